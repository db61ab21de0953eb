"""Effective RBAC permissions: rule matching, binding scope, implicit groups, aggregation."""

from __future__ import annotations

import pytest

from auditor.collectors.k8s_rbac import (
    binding_items,
    capabilities_of,
    role_items,
    subject_items,
)
from auditor.collectors.k8s_workloads import K8sObject

RBAC = "rbac.authorization.k8s.io"


def rule(groups, resources, verbs, names=None):
    r = {"apiGroups": groups, "resources": resources, "verbs": verbs}
    if names:
        r["resourceNames"] = names
    return r


def role(name, *rules, namespace=None, labels=None, aggregation=None):
    metadata = {"name": name, "labels": labels or {}}
    if namespace:
        metadata["namespace"] = namespace
    data = {"metadata": metadata, "rules": list(rules)}
    if aggregation:
        data["aggregationRule"] = aggregation
        data["rules"] = []
    return K8sObject(data, f"{name}.yaml:1")


def binding(name, role_kind, role_name, *subjects, namespace=None, labels=None):
    metadata = {"name": name, "labels": labels or {}}
    if namespace:
        metadata["namespace"] = namespace
    return K8sObject(
        {
            "metadata": metadata,
            "roleRef": {"kind": role_kind, "name": role_name},
            "subjects": list(subjects),
        },
        f"{name}.yaml:1",
    )


def sa(name, namespace="apps"):
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


def subjects(cluster_roles=(), bindings=(), cluster_bindings=(), roles=(), offline=False):
    items = subject_items(roles, cluster_roles, bindings, cluster_bindings, offline=offline)
    return {i["ref"]: i for i in items}


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ([rule([""], ["secrets"], ["get"])], {"read_secrets"}),
        ([rule([""], ["secrets"], ["list"])], {"read_secrets"}),
        ([rule([""], ["secrets"], ["get"], names=["one"])], set()),  # named secrets only
        ([rule([""], ["secrets"], ["create"])], set()),
        ([rule(["apps"], ["secrets"], ["get"])], set()),  # wrong API group
        ([rule(["*"], ["*"], ["*"])], None),  # everything, checked below
        ([rule([RBAC], ["clusterroles"], ["escalate"])], {"escalate"}),
        ([rule([RBAC], ["roles"], ["bind"], names=["admin"])], {"bind"}),
        ([rule([""], ["users", "groups"], ["impersonate"])], {"impersonate"}),
        ([rule([""], ["pods/exec"], ["create"])], {"pods_exec"}),
        ([rule([""], ["pods/*"], ["create"])], set()),  # RBAC has no pods/* wildcard
        ([rule([""], ["*/exec"], ["create"])], {"pods_exec"}),  # but */subresource works
        ([rule([""], ["pods"], ["create"])], {"create_workloads"}),
        ([rule([""], ["nodes/proxy"], ["get"])], {"nodes_proxy"}),
        ([rule([""], ["nodes"], ["get", "list"])], set()),
        ([rule([""], ["serviceaccounts/token"], ["create"])], {"create_tokens"}),
        (
            [rule(["certificates.k8s.io"], ["certificatesigningrequests/approval"], ["update"])],
            {"approve_csr"},
        ),
        (
            [
                rule(
                    ["admissionregistration.k8s.io"], ["validatingwebhookconfigurations"], ["patch"]
                )
            ],
            {"webhook_config"},
        ),
        ([{"nonResourceURLs": ["*"], "verbs": ["*"]}], set()),
        # get on every resource includes get on pods/exec (websocket exec) and nodes/proxy
        ([rule([""], ["*"], ["get"])], {"wildcard", "read_secrets", "pods_exec", "nodes_proxy"}),
    ],
)
def test_capabilities_of_rules(rules, expected):
    found = capabilities_of(rules)
    if expected is None:
        assert {
            "wildcard",
            "read_secrets",
            "escalate",
            "bind",
            "impersonate",
            "pods_exec",
            "nodes_proxy",
        } <= found
    else:
        assert found == expected


def test_cluster_role_binding_grants_cluster_wide_and_role_binding_in_its_namespace():
    reader = role("secret-reader", rule([""], ["secrets"], ["get", "list"]))
    found = subjects(
        cluster_roles=[reader],
        cluster_bindings=[binding("global", "ClusterRole", "secret-reader", sa("ci"))],
        bindings=[binding("local", "ClusterRole", "secret-reader", sa("app"), namespace="apps")],
    )
    assert [g["scope"] for g in found["ServiceAccount:apps/ci"]["grants"]["read_secrets"]] == ["*"]
    assert [g["scope"] for g in found["ServiceAccount:apps/app"]["grants"]["read_secrets"]] == [
        "apps"
    ]
    grant = found["ServiceAccount:apps/ci"]["grants"]["read_secrets"][0]
    assert (grant["binding"], grant["role"], grant["bootstrap"]) == (
        "ClusterRoleBinding/global",
        "ClusterRole/secret-reader",
        False,
    )


def test_role_binding_to_a_namespaced_role():
    found = subjects(
        roles=[role("exec", rule([""], ["pods/exec"], ["create"]), namespace="apps")],
        bindings=[
            binding("debug", "Role", "exec", {"kind": "User", "name": "jane"}, namespace="apps")
        ],
    )
    assert [g["scope"] for g in found["User:jane"]["grants"]["pods_exec"]] == ["apps"]


def test_service_account_subject_without_namespace_takes_the_binding_namespace():
    found = subjects(
        roles=[role("r", rule([""], ["pods"], ["get"]), namespace="apps")],
        bindings=[
            binding(
                "b", "Role", "r", {"kind": "ServiceAccount", "name": "worker"}, namespace="apps"
            )
        ],
    )
    assert "ServiceAccount:apps/worker" in found


def test_service_accounts_inherit_their_implicit_groups():
    reader = role("secret-reader", rule([""], ["secrets"], ["list"]))
    found = subjects(
        cluster_roles=[reader],
        cluster_bindings=[
            binding(
                "all-sa",
                "ClusterRole",
                "secret-reader",
                {"kind": "Group", "name": "system:serviceaccounts"},
            ),
            binding("mine", "ClusterRole", "view", sa("ci")),
        ],
    )
    grants = found["ServiceAccount:apps/ci"]["grants"]["read_secrets"]
    assert [(g["binding"], g["via"]) for g in grants] == [
        ("ClusterRoleBinding/all-sa", "Group:system:serviceaccounts")
    ]
    assert found["Group:system:serviceaccounts"]["grants"]["read_secrets"]


def test_bootstrap_bindings_are_marked():
    labels = {"kubernetes.io/bootstrapping": "rbac-defaults"}
    found = subjects(
        cluster_roles=[role("cluster-admin", rule(["*"], ["*"], ["*"]), labels=labels)],
        cluster_bindings=[
            binding(
                "cluster-admin",
                "ClusterRole",
                "cluster-admin",
                {"kind": "Group", "name": "system:masters"},
                labels=labels,
            )
        ],
    )
    grants = found["Group:system:masters"]["grants"]
    assert grants["escalate"][0]["bootstrap"] is True
    assert grants["wildcard"]


def test_missing_roles_grant_nothing_live_but_default_roles_are_known_offline():
    crb = [binding("admins", "ClusterRole", "cluster-admin", {"kind": "User", "name": "jane"})]
    live = subjects(cluster_bindings=crb)["User:jane"]
    assert not any(live["grants"].values())
    assert live["unresolved_roles"] == ["ClusterRole/cluster-admin"]
    offline = subjects(cluster_bindings=crb, offline=True)["User:jane"]
    assert offline["grants"]["read_secrets"] and offline["grants"]["escalate"]
    assert offline["unresolved_roles"] == []
    edit = subjects(
        bindings=[binding("e", "ClusterRole", "edit", sa("ci"), namespace="apps")], offline=True
    )
    assert edit["ServiceAccount:apps/ci"]["grants"]["impersonate"][0]["scope"] == "apps"


def test_aggregated_cluster_roles_take_the_rules_of_the_roles_they_select():
    part = role(
        "monitoring-secrets", rule([""], ["secrets"], ["get"]), labels={"agg": "monitoring"}
    )
    other = role("unrelated", rule([""], ["nodes/proxy"], ["get"]), labels={"agg": "other"})
    aggregate = role(
        "monitoring", aggregation={"clusterRoleSelectors": [{"matchLabels": {"agg": "monitoring"}}]}
    )
    found = subjects(
        cluster_roles=[part, other, aggregate],
        cluster_bindings=[binding("b", "ClusterRole", "monitoring", sa("prom"))],
    )
    grants = found["ServiceAccount:apps/prom"]["grants"]
    assert grants["read_secrets"] and not grants["nodes_proxy"]


def test_aggregation_with_match_expressions_and_cycles():
    a = role(
        "a",
        labels={"tier": "x"},
        aggregation={
            "clusterRoleSelectors": [
                {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["y"]}]}
            ]
        },
    )
    b = role(
        "b",
        labels={"tier": "y"},
        aggregation={
            "clusterRoleSelectors": [{"matchExpressions": [{"key": "tier", "operator": "Exists"}]}]
        },
    )
    c = role("c", rule([""], ["pods/exec"], ["create"]), labels={"tier": "y"})
    found = subjects(
        cluster_roles=[a, b, c], cluster_bindings=[binding("x", "ClusterRole", "a", sa("s"))]
    )
    assert found["ServiceAccount:apps/s"]["grants"]["pods_exec"]


def test_role_and_binding_items():
    roles = role_items(
        [role("r", rule([""], ["pods"], ["*"]), namespace="apps")],
        [
            role(
                "c",
                {"nonResourceURLs": ["/healthz"], "verbs": ["get"]},
                labels={"kubernetes.io/bootstrapping": "rbac-defaults"},
            )
        ],
    )
    assert [(r["kind"], r["namespace"], r["name"], r["bootstrap"]) for r in roles] == [
        ("Role", "apps", "r", False),
        ("ClusterRole", None, "c", True),
    ]
    assert roles[0]["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]}]
    bindings = binding_items(
        [
            binding(
                "rb",
                "ClusterRole",
                "admin",
                sa("a"),
                {"kind": "Group", "name": "devs"},
                namespace="apps",
            )
        ],
        [],
    )
    assert bindings[0]["role_ref"] == {"kind": "ClusterRole", "name": "admin"}
    assert [s["ref"] for s in bindings[0]["subjects"]] == ["ServiceAccount:apps/a", "Group:devs"]
