"""Pod-template extraction: which objects become workload items, and what the items say."""

from __future__ import annotations

import pytest

from auditor.collectors.k8s_workloads import (
    K8sObject,
    parse_image,
    resolve_tokens,
    service_account_settings,
    workload_items,
)


def obj(kind: str, name: str, spec: dict, namespace: str = "shop", **metadata) -> K8sObject:
    return K8sObject(
        {
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace, **metadata},
            "spec": spec,
        },
        f"{name}.yaml:1",
    )


def template(*containers: dict, **pod) -> dict:
    return {"template": {"spec": {"containers": list(containers), **pod}}}


def owned_by(kind: str, name: str, uid: str | None = None) -> dict:
    ref = {"kind": kind, "name": name, "controller": True}
    if uid:
        ref["uid"] = uid
    return {"ownerReferences": [ref]}


APP = {"name": "app", "image": "nginx:1.27"}


def test_a_deployment_its_replicaset_and_its_pods_are_one_item():
    objects = {
        "Deployment": [obj("Deployment", "web", template(APP), uid="d-1")],
        "ReplicaSet": [
            obj(
                "ReplicaSet",
                "web-5d8f",
                template(APP),
                uid="r-1",
                **owned_by("Deployment", "web", "d-1"),
            )
        ],
        "Pod": [
            obj(
                "Pod",
                f"web-5d8f-{i}",
                {"containers": [APP]},
                **owned_by("ReplicaSet", "web-5d8f", "r-1"),
            )
            for i in range(3)
        ],
    }
    items, tokens = workload_items(objects)
    assert [(i["kind"], i["name"]) for i in items] == [("Deployment", "web")]
    assert [(t["kind"], t["name"]) for t in tokens] == [("Deployment", "web")]


def test_a_cronjob_owns_its_jobs_and_their_pods():
    job_template = {"jobTemplate": {"spec": template(APP)}}
    objects = {
        "CronJob": [obj("CronJob", "backup", job_template)],
        "Job": [obj("Job", "backup-2904", template(APP), **owned_by("CronJob", "backup"))],
        "Pod": [
            obj("Pod", "backup-2904-x", {"containers": [APP]}, **owned_by("Job", "backup-2904"))
        ],
    }
    items, _ = workload_items(objects)
    assert [(i["kind"], i["name"]) for i in items] == [("CronJob", "backup")]
    assert items[0]["images"]["app"]["image"] == "nginx:1.27"


def test_pods_whose_controller_was_not_collected_are_kept_and_say_so():
    objects = {
        "Pod": [obj("Pod", "orphan", {"containers": [APP]}, **owned_by("ReplicaSet", "gone"))]
    }
    items, _ = workload_items(objects)
    assert [(i["name"], i["owner"]) for i in items] == [("orphan", "ReplicaSet/gone")]


def test_owner_in_another_namespace_does_not_hide_a_pod():
    objects = {
        "ReplicaSet": [obj("ReplicaSet", "web", template(APP), namespace="other")],
        "Pod": [obj("Pod", "web-1", {"containers": [APP]}, **owned_by("ReplicaSet", "web"))],
    }
    items, _ = workload_items(objects)
    assert {(i["kind"], i["namespace"]) for i in items} == {
        ("ReplicaSet", "other"),
        ("Pod", "shop"),
    }


def test_a_non_controller_owner_reference_does_not_hide_a_pod():
    ref = {"ownerReferences": [{"kind": "Deployment", "name": "web", "controller": False}]}
    objects = {
        "Deployment": [obj("Deployment", "web", template(APP))],
        "Pod": [obj("Pod", "sidecar", {"containers": [APP]}, **ref)],
    }
    assert len(workload_items(objects)[0]) == 2


def test_every_workload_kind_and_its_template_path():
    spec = template(APP)
    objects = {
        "Pod": [obj("Pod", "p", {"containers": [APP]})],
        "PodTemplate": [
            K8sObject({"kind": "PodTemplate", "metadata": {"name": "pt"}, **spec}, None)
        ],
        "Deployment": [obj("Deployment", "d", spec)],
        "StatefulSet": [obj("StatefulSet", "s", spec)],
        "DaemonSet": [obj("DaemonSet", "ds", spec)],
        "ReplicaSet": [obj("ReplicaSet", "rs", spec)],
        "ReplicationController": [obj("ReplicationController", "rc", spec)],
        "Job": [obj("Job", "j", spec)],
        "CronJob": [obj("CronJob", "cj", {"jobTemplate": {"spec": spec}})],
    }
    items, _ = workload_items(objects)
    assert len(items) == 9
    assert all(i["containers"] == {"app": "container"} for i in items)
    template_item = next(i for i in items if i["kind"] == "PodTemplate")
    assert template_item["namespace"] == "default"  # no namespace: the default namespace


def test_a_workload_without_a_pod_spec_is_an_error_item():
    items, tokens = workload_items({"Deployment": [obj("Deployment", "broken", {"replicas": 2})]})
    assert items[0]["_error"] == "no pod spec at spec.template.spec"
    assert tokens == []


def test_container_values_inherit_from_the_pod_and_the_container_wins():
    pod = {
        "securityContext": {
            "runAsUser": 1000,
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {"name": "a", "image": "x"},
            {
                "name": "b",
                "image": "x",
                "securityContext": {
                    "runAsUser": 0,
                    "runAsNonRoot": False,
                    "seccompProfile": {"type": "Unconfined"},
                },
            },
        ],
        "initContainers": [{"name": "init", "image": "x"}],
        "ephemeralContainers": [{"name": "debug", "image": "x"}],
    }
    item = workload_items({"Pod": [obj("Pod", "p", pod)]})[0][0]
    assert item["containers"] == {
        "a": "container",
        "b": "container",
        "init": "init",
        "debug": "ephemeral",
    }
    assert item["run_as_user"] == {"a": 1000, "b": 0, "init": 1000, "debug": 1000}
    assert item["run_as_non_root"] == {"a": True, "b": False, "init": True, "debug": True}
    assert item["seccomp"]["a"] == "RuntimeDefault" and item["seccomp"]["b"] == "Unconfined"


def test_fields_of_the_wrong_type_are_absent():
    container = {
        "name": "c",
        "image": "x",
        "securityContext": {
            "runAsUser": "root",
            "privileged": "true",
            "allowPrivilegeEscalation": 0,
        },
    }
    pod = {"securityContext": "restricted", "hostNetwork": "yes", "containers": [container]}
    item = workload_items({"Pod": [obj("Pod", "p", pod)]})[0][0]
    assert (item["run_as_user"], item["privileged"], item["allow_privilege_escalation"]) == (
        {"c": None},
        {"c": None},
        {"c": None},
    )
    assert item["host_network"] is False


def test_misplaced_fields_are_ignored():
    pod = {
        "securityContext": {"allowPrivilegeEscalation": False},  # no such pod-level field
        "containers": [{"name": "c", "image": "x", "seccompProfile": {"type": "RuntimeDefault"}}],
    }
    item = workload_items({"Pod": [obj("Pod", "p", pod)]})[0][0]
    assert (item["allow_privilege_escalation"], item["seccomp"]) == ({"c": None}, {"c": None})


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        ({"container.seccomp.security.alpha.kubernetes.io/c": "runtime/default"}, "RuntimeDefault"),
        ({"container.seccomp.security.alpha.kubernetes.io/c": "docker/default"}, "RuntimeDefault"),
        ({"container.seccomp.security.alpha.kubernetes.io/c": "localhost/prof.json"}, "Localhost"),
        ({"seccomp.security.alpha.kubernetes.io/pod": "unconfined"}, "Unconfined"),
        ({"container.seccomp.security.alpha.kubernetes.io/other": "runtime/default"}, None),
    ],
)
def test_legacy_seccomp_annotations_of_the_pod_template_count_for_old_kubelets(
    annotations, expected
):
    spec = {
        "template": {
            "metadata": {"annotations": annotations},
            "spec": {"containers": [{"name": "c", "image": "x"}]},
        }
    }
    item = workload_items({"Deployment": [obj("Deployment", "d", spec)]})[0][0]
    assert item["seccomp_legacy"] == {"c": expected}
    assert item["seccomp"] == {"c": None}  # kubelets from 1.27 on ignore the annotations
    assert item["pod_seccomp"] == []


def test_the_field_wins_over_annotations_and_the_pod_field_reaches_containers():
    spec = {
        "template": {
            "metadata": {
                "annotations": {
                    "seccomp.security.alpha.kubernetes.io/pod": "unconfined",
                    "container.seccomp.security.alpha.kubernetes.io/a": "unconfined",
                }
            },
            "spec": {
                "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "x"}],
            },
        }
    }
    item = workload_items({"Deployment": [obj("Deployment", "d", spec)]})[0][0]
    assert item["seccomp"] == {"a": "RuntimeDefault", "b": "RuntimeDefault"}
    assert item["seccomp_legacy"] == {"a": "Unconfined", "b": "RuntimeDefault"}
    assert (item["pod_seccomp"], item["pod_seccomp_legacy"]) == (
        ["RuntimeDefault"],
        ["RuntimeDefault", "Unconfined"],
    )


def test_annotations_on_the_controller_itself_are_not_pod_annotations():
    spec = template({"name": "c", "image": "x"})
    controller = obj(
        "Deployment",
        "d",
        spec,
        annotations={"seccomp.security.alpha.kubernetes.io/pod": "runtime/default"},
    )
    assert workload_items({"Deployment": [controller]})[0][0]["seccomp"] == {"c": None}


def test_host_paths_ports_capabilities_and_resources():
    container = {
        "name": "c",
        "image": "x",
        "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 81, "hostPort": 0}],
        "securityContext": {
            "capabilities": {"add": ["cap_sys_admin", "NET_BIND_SERVICE"], "drop": ["all"]}
        },
        "resources": {"limits": {"memory": "1Gi"}, "requests": {"cpu": "1", "memory": None}},
    }
    pod = {
        "containers": [container],
        "volumes": [
            {"name": "sock", "hostPath": {"path": "/var/run/"}},
            {"name": "tmp", "emptyDir": {}},
            {"name": "bare"},
        ],
    }
    item = workload_items({"Pod": [obj("Pod", "p", pod)]})[0][0]
    assert item["host_ports"] == {"c": [8080]}
    assert item["capabilities_add"] == {"c": ["SYS_ADMIN", "NET_BIND_SERVICE"]}
    assert item["capabilities_drop"] == {"c": ["ALL"]}
    assert (item["limits"], item["requests"]) == ({"c": ["memory"]}, {"c": ["cpu"]})
    assert item["volumes"] == {"sock": "hostPath", "tmp": "emptyDir", "bare": None}
    assert item["host_paths"] == {"sock": "/var/run"}


def test_credentials_in_env_values_and_secret_references():
    container = {
        "name": "c",
        "image": "x",
        "env": [
            {"name": "DB_PASSWORD", "value": "hunter2"},
            {"name": "PASSWORD_FILE", "value": "/run/secrets/db"},
            {"name": "FEATURE_TOKEN_ENABLED", "value": "true"},
            {"name": "AWS_ID", "value": "AKIAABCDEFGHIJKLMNOP"},
            {"name": "GREETING", "value": "password is not in the name"},
            {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}},
            {"name": "EMPTY_SECRET", "value": ""},
        ],
        "envFrom": [{"secretRef": {"name": "bundle"}}, {"configMapRef": {"name": "cfg"}}],
    }
    item = workload_items({"Pod": [obj("Pod", "p", {"containers": [container]})]})[0][0]
    assert item["env_hardcoded_secrets"] == {"c": ["DB_PASSWORD", "AWS_ID"]}
    assert item["env_from_secrets"] == {
        "c": ["API_TOKEN <- secret api/token", "envFrom <- secret bundle"]
    }


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("nginx", ("docker.io", "library/nginx", None, None)),
        ("nginx:1.27", ("docker.io", "library/nginx", "1.27", None)),
        ("bitnami/kafka:3", ("docker.io", "bitnami/kafka", "3", None)),
        ("registry:5000/app", ("registry:5000", "app", None, None)),
        ("localhost/app:dev", ("localhost", "app", "dev", None)),
        ("ghcr.io/org/app:1.0@sha256:abcdef", ("ghcr.io", "org/app", "1.0", "sha256:abcdef")),
        ("quay.io/app@sha256:123456", ("quay.io", "app", None, "sha256:123456")),
        ("app@notadigest", ("docker.io", "library/app@notadigest", None, None)),
    ],
)
def test_image_references(reference, expected):
    parsed = parse_image(reference)
    assert (parsed["registry"], parsed["repository"], parsed["tag"], parsed["digest"]) == expected


def test_token_automount_resolution():
    objects = {
        "Pod": [
            obj(
                "Pod", "explicit-off", {"containers": [APP], "automountServiceAccountToken": False}
            ),
            obj(
                "Pod",
                "explicit-on",
                {
                    "containers": [APP],
                    "automountServiceAccountToken": True,
                    "serviceAccountName": "quiet",
                },
            ),
            obj("Pod", "via-account", {"containers": [APP], "serviceAccountName": "quiet"}),
            obj("Pod", "legacy-field", {"containers": [APP], "serviceAccount": "quiet"}),
            obj("Pod", "missing-account", {"containers": [APP], "serviceAccountName": "ghost"}),
            obj(
                "Pod",
                "other-namespace",
                {"containers": [APP], "serviceAccountName": "quiet"},
                namespace="elsewhere",
            ),
        ]
    }
    accounts = service_account_settings(
        [
            K8sObject(
                {
                    "metadata": {"name": "quiet", "namespace": "shop"},
                    "automountServiceAccountToken": False,
                },
                None,
            ),
            K8sObject({"metadata": {"name": "default", "namespace": "shop"}}, None),
        ]
    )
    _, tokens = workload_items(objects)
    resolved = {
        t["name"]: (t["automount"], t["automount_source"]) for t in resolve_tokens(tokens, accounts)
    }
    assert resolved["explicit-off"] == (False, "pod spec")
    assert resolved["explicit-on"] == (True, "pod spec")
    assert resolved["via-account"] == (False, "ServiceAccount")
    assert resolved["legacy-field"] == (False, "ServiceAccount")
    assert resolved["missing-account"][0] is True
    assert resolved["other-namespace"][0] is True


def test_repeated_container_names_stay_apart():
    pod = {"containers": [{"name": "x", "image": "b"}, {"name": "x", "image": "c"}]}
    item = workload_items({"Pod": [obj("Pod", "p", pod)]})[0][0]
    assert list(item["containers"]) == ["x", "x#2"]  # a missing name is an error (below)
    assert [i["image"] for i in item["images"].values()] == ["b", "c"]


@pytest.mark.parametrize(
    ("pod", "named"),
    [
        ({"containers": [{"name": "web"}]}, "spec.containers[0] (web).image: missing"),
        ({"containers": [{"image": "x"}]}, "spec.containers[0].name: missing"),
        ({"containers": []}, "spec.containers: no container"),
        (
            {
                "containers": [{"name": "c", "image": "x"}],
                "initContainers": [
                    {
                        "name": "i",
                        "image": "x",
                        "securityContext": {"seccompProfile": {"type": "Localhost"}},
                    }
                ],
            },
            "spec.initContainers[0] (i).securityContext.seccompProfile.localhostProfile: "
            "missing for type Localhost",
        ),
        (
            {
                "securityContext": {"appArmorProfile": {"type": "runtime/default"}},
                "containers": [{"name": "c", "image": "x"}],
            },
            "spec.securityContext.appArmorProfile.type: 'runtime/default' is not one of "
            "RuntimeDefault, Localhost, Unconfined",
        ),
    ],
)
def test_an_invalid_pod_spec_is_an_error_naming_the_field(pod, named):
    (item,), tokens = workload_items({"Pod": [obj("Pod", "p", pod)]})
    assert item["_error"] == f"invalid pod spec, the API server would refuse it: {named}"
    assert tokens == []


def test_a_valid_localhost_profile_is_fine():
    pod = {
        "securityContext": {
            "seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/audit.json"}
        },
        "containers": [{"name": "c", "image": "x"}],
    }
    (item,), _ = workload_items({"Pod": [obj("Pod", "p", pod)]})
    assert "_error" not in item and item["seccomp"] == {"c": "Localhost"}
