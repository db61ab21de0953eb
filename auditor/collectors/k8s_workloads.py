"""Pod templates of Kubernetes workloads, normalised into lean items the workload checks read.

One item per pod template: Pods that no collected controller owns, and the templates of
Deployments, StatefulSets, DaemonSets, ReplicaSets, ReplicationControllers, Jobs, CronJobs and
PodTemplates. An object owned by a controller that was collected too (a Deployment's
ReplicaSet, its pods, a CronJob's Jobs) is left out: its results belong to the owner, once.

Items hold only what checks read, with Kubernetes semantics applied: the effective value of
settings a container inherits from its pod (container `securityContext` wins), legacy AppArmor
annotations folded in, legacy seccomp annotations beside the fields (`seccomp_legacy`: only
kubelets before 1.27 apply them), fields of the wrong type treated as absent, images split
into registry / repository / tag / digest. Whether any of it is compliant is for the checks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from auditor.redact import is_secret_value

# kind -> path to the pod template (spec and metadata), in the order items are listed.
TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": (),
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
    "PodTemplate": ("template",),
}
CONTAINER_SETS = (
    ("containers", "container"),
    ("initContainers", "init"),
    ("ephemeralContainers", "ephemeral"),
)
SECCOMP_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
SECCOMP_CONTAINER_ANNOTATION = "container.seccomp.security.alpha.kubernetes.io/"
APPARMOR_CONTAINER_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"
MAX_PROBLEMS_SHOWN = 3  # invalid fields named in a workload's error
_DIGEST = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]+$")


@dataclass(frozen=True)
class K8sObject:
    """An API object as listed, with the file:line it came from (snapshots)."""

    data: dict[str, Any]
    location: str | None


def workload_items(
    objects: Mapping[str, list[K8sObject]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(workload items, their pod-level ServiceAccount settings) for every pod template that is
    not owned by another collected workload. `objects` maps a kind to its objects."""
    present = _present(objects)
    items: list[dict[str, Any]] = []
    tokens: list[dict[str, Any]] = []
    for kind, path in TEMPLATE_PATHS.items():
        for obj in objects.get(kind, []):
            owner = _controller(obj.data)
            if owner is not None and _owner_present(owner, _namespace(obj.data), present):
                continue
            item, token = template_item(kind, obj, path, _owner_label(owner))
            items.append(item)
            if token is not None:
                tokens.append(token)
    return items, tokens


def template_item(
    kind: str, obj: K8sObject, path: tuple[str, ...], owner: str | None = None
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The lean item of one workload's pod template, and its token-automount facts."""
    data = obj.data
    base: dict[str, Any] = {
        "kind": kind,
        "namespace": _namespace(data),
        "name": _name(data),
        "location": obj.location,
    }
    uid = _map(data.get("metadata")).get("uid")
    if isinstance(uid, str):
        base["uid"] = uid
    if owner is not None:
        base["owner"] = owner
    template: Any = data
    for key in path:
        template = template.get(key) if isinstance(template, dict) else None
    spec = template.get("spec") if isinstance(template, dict) else None
    if not isinstance(spec, dict):
        where = ".".join((*path, "spec"))
        return {**base, "_error": f"no pod spec at {where}"}, None
    problems = spec_problems(spec, ".".join((*path, "spec")))
    if problems:
        shown = "; ".join(problems[:MAX_PROBLEMS_SHOWN])
        more = (
            f" (and {len(problems) - MAX_PROBLEMS_SHOWN} more)"
            if len(problems) > MAX_PROBLEMS_SHOWN
            else ""
        )
        return {
            **base,
            "_error": f"invalid pod spec, the API server would refuse it: {shown}{more}",
        }, None
    metadata = _map(template.get("metadata")) if isinstance(template, dict) else {}
    annotations = {k: v for k, v in _map(metadata.get("annotations")).items() if isinstance(v, str)}
    item = {**base, **pod_facts(spec, annotations)}
    token = {
        **base,
        "service_account": item["service_account"],
        "pod_automount": _bool(spec.get("automountServiceAccountToken")),
    }
    return item, token


def spec_problems(spec: Mapping[str, Any], where: str) -> list[str]:
    """What makes a pod spec invalid for the API server, each naming its field: a check
    that read such a spec as "absent" would pass a workload that can never run as written.
    Covered: no containers, a container without name or image, a seccomp or AppArmor profile
    of type Localhost without localhostProfile, or of an unknown type."""
    problems: list[str] = []
    if not _list(spec.get("containers")):
        problems.append(f"{where}.containers: no container")
    problems += _profile_problems(_map(spec.get("securityContext")), f"{where}.securityContext")
    for key, _kind in CONTAINER_SETS:
        for index, container in enumerate(_list(spec.get(key))):
            at = f"{where}.{key}[{index}]"
            if not isinstance(container, dict):
                problems.append(f"{at}: not a mapping")
                continue
            if not _str(container.get("name")):
                problems.append(f"{at}.name: missing")
            else:
                at += f" ({container['name']})"
            if not _str(container.get("image")):
                problems.append(f"{at}.image: missing")
            context = _map(container.get("securityContext"))
            problems += _profile_problems(context, f"{at}.securityContext")
    return problems


def _profile_problems(context: Mapping[str, Any], where: str) -> list[str]:
    problems = []
    for field, types in (
        ("seccompProfile", ("RuntimeDefault", "Localhost", "Unconfined")),
        ("appArmorProfile", ("RuntimeDefault", "Localhost", "Unconfined")),
    ):
        profile = context.get(field)
        if not isinstance(profile, dict):
            continue
        kind = profile.get("type")
        if kind not in types:
            problems.append(f"{where}.{field}.type: {kind!r} is not one of {', '.join(types)}")
        elif kind == "Localhost" and not _str(profile.get("localhostProfile")):
            problems.append(f"{where}.{field}.localhostProfile: missing for type Localhost")
    return problems


# Per-container settings, each a map from container name to the value (columns): a check
# reads only the setting it judges, and CEL copies whatever an expression reads.
COLUMNS = (
    "images",
    "privileged",
    "allow_privilege_escalation",
    "read_only_root_filesystem",
    "run_as_user",
    "run_as_non_root",
    "seccomp",
    "seccomp_legacy",
    "apparmor",
    "selinux",
    "proc_mount",
    "host_process",
    "capabilities_add",
    "capabilities_drop",
    "host_ports",
    "limits",
    "requests",
    "env_hardcoded_secrets",
    "env_from_secrets",
)


def pod_facts(spec: dict[str, Any], annotations: Mapping[str, str]) -> dict[str, Any]:
    """What the checks read from one pod spec (and its pod annotations)."""
    pod_context = _map(spec.get("securityContext"))
    pod_field = _str(_map(pod_context.get("seccompProfile")).get("type"))
    pod_seccomp = [p for p in (pod_field,) if p is not None]
    pod_seccomp_legacy = [
        p for p in (pod_field, _profile(annotations.get(SECCOMP_POD_ANNOTATION))) if p is not None
    ]
    service_account = (
        _str(spec.get("serviceAccountName")) or _str(spec.get("serviceAccount")) or "default"
    )
    containers: dict[str, str] = {}
    columns: dict[str, dict[str, Any]] = {column: {} for column in COLUMNS}
    for key, kind in CONTAINER_SETS:
        for container in _list(spec.get(key)):
            if not isinstance(container, dict):
                continue
            name = _unique(_str(container.get("name")) or "", containers)
            containers[name] = kind
            settings = container_facts(
                container, name, pod_context, annotations, pod_seccomp_legacy
            )
            for column in COLUMNS:
                columns[column][name] = settings[column]
    sysctls = [
        s["name"] for s in _list(pod_context.get("sysctls")) if isinstance(_map(s).get("name"), str)
    ]
    volumes: dict[str, str | None] = {}
    host_paths: dict[str, str | None] = {}
    for volume in (v for v in _list(spec.get("volumes")) if isinstance(v, dict)):
        name = _unique(_str(volume.get("name")) or "", volumes)
        volumes[name], path = _volume(volume)
        if volumes[name] == "hostPath":
            host_paths[name] = path
    return {
        "service_account": service_account,
        "host_network": spec.get("hostNetwork") is True,
        "host_pid": spec.get("hostPID") is True,
        "host_ipc": spec.get("hostIPC") is True,
        "pod_seccomp": pod_seccomp,
        "pod_seccomp_legacy": pod_seccomp_legacy,
        "pod_selinux": _selinux(pod_context.get("seLinuxOptions")),
        "pod_apparmor": _str(_map(pod_context.get("appArmorProfile")).get("type")),
        "sysctls": sysctls,
        "volumes": volumes,
        "host_paths": host_paths,
        "containers": containers,
        **columns,
    }


def container_facts(
    container: dict[str, Any],
    name: str,
    pod_context: Mapping[str, Any],
    annotations: Mapping[str, str],
    pod_seccomp: list[str],
) -> dict[str, Any]:
    """One container's settings, with the values it inherits from the pod resolved.

    `seccomp` is the profile the fields give (the container's, else the pod's), as kubelets
    from 1.27 on apply it; `seccomp_legacy` also reads the alpha annotations, which older
    kubelets apply (container field, container annotation, pod field, pod annotation)."""
    context = _map(container.get("securityContext"))
    capabilities = _map(context.get("capabilities"))
    resources = _map(container.get("resources"))
    image = _str(container.get("image")) or None
    field = _str(_map(context.get("seccompProfile")).get("type"))
    pod_field = _str(_map(pod_context.get("seccompProfile")).get("type"))
    seccomp_legacy = (
        field
        or _profile(annotations.get(SECCOMP_CONTAINER_ANNOTATION + name))
        or (pod_seccomp[0] if pod_seccomp else None)
    )
    apparmor = (
        _str(_map(context.get("appArmorProfile")).get("type"))
        or _profile(annotations.get(APPARMOR_CONTAINER_ANNOTATION + name))
        or _str(_map(pod_context.get("appArmorProfile")).get("type"))
    )
    windows = _map(context.get("windowsOptions"))
    pod_windows = _map(pod_context.get("windowsOptions"))
    secret_values, secret_refs = _secret_env(container)
    return {
        "images": {"image": image, **parse_image(image)} if image else None,
        "privileged": _bool(context.get("privileged")),
        "allow_privilege_escalation": _bool(context.get("allowPrivilegeEscalation")),
        "read_only_root_filesystem": _bool(context.get("readOnlyRootFilesystem")),
        "run_as_user": _first(_int(context.get("runAsUser")), _int(pod_context.get("runAsUser"))),
        "run_as_non_root": _first(
            _bool(context.get("runAsNonRoot")), _bool(pod_context.get("runAsNonRoot"))
        ),
        "seccomp": field or pod_field,
        "seccomp_legacy": seccomp_legacy,
        "apparmor": apparmor,
        "selinux": _selinux(context.get("seLinuxOptions")),
        "proc_mount": _str(context.get("procMount")),
        "host_process": _first(
            _bool(windows.get("hostProcess")), _bool(pod_windows.get("hostProcess"))
        ),
        "capabilities_add": _capabilities(capabilities.get("add")),
        "capabilities_drop": _capabilities(capabilities.get("drop")),
        "host_ports": [
            p["hostPort"]
            for p in _list(container.get("ports"))
            if _int(_map(p).get("hostPort")) not in (None, 0)
        ],
        "limits": _resource_keys(resources.get("limits")),
        "requests": _resource_keys(resources.get("requests")),
        "env_hardcoded_secrets": secret_values,
        "env_from_secrets": secret_refs,
    }


def _unique(name: str, taken: Mapping[str, Any]) -> str:
    """`name`, or `name#2`, `name#3` ... when a malformed spec repeats it (or leaves it empty)."""
    if name and name not in taken:
        return name
    base = name or "(unnamed)"
    count = 2 if name else 1
    while f"{base}#{count}" in taken:
        count += 1
    return f"{base}#{count}"


def parse_image(reference: str) -> dict[str, str | None]:
    """registry, repository, tag and digest of an image reference. A digest is a trailing
    `@algorithm:hex`; the tag is what follows `:` in the last path part; a first part with a
    dot or a port, or `localhost`, is a registry, otherwise the image is on Docker Hub."""
    name, digest = reference, None
    if "@" in reference:
        head, _, tail = reference.rpartition("@")
        if _DIGEST.match(tail):
            name, digest = head, tail
    parts = name.split("/")
    tag = None
    if ":" in parts[-1]:
        parts[-1], _, tag = parts[-1].partition(":")
    first = parts[0]
    if len(parts) > 1 and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, parts[1:]
    else:
        registry, path = "docker.io", parts
        if len(path) == 1:
            path = ["library", *path]
    return {
        "registry": registry,
        "repository": "/".join(path),
        "tag": tag,
        "digest": digest,
    }


def service_account_settings(objects: Iterable[K8sObject]) -> dict[tuple[str, str], bool | None]:
    """(namespace, name) -> the ServiceAccount's automountServiceAccountToken (None: unset)."""
    return {
        (_namespace(o.data), _name(o.data)): _bool(o.data.get("automountServiceAccountToken"))
        for o in objects
    }


def resolve_tokens(
    tokens: list[dict[str, Any]], accounts: Mapping[tuple[str, str], bool | None]
) -> list[dict[str, Any]]:
    """Each workload's effective token automount: the pod's own setting wins, then its
    ServiceAccount's, then the API default (mounted)."""
    resolved = []
    for token in tokens:
        key = (token["namespace"], token["service_account"])
        account_setting = accounts.get(key)
        if token["pod_automount"] is not None:
            effective, source = token["pod_automount"], "pod spec"
        elif account_setting is not None:
            effective, source = account_setting, "ServiceAccount"
        else:
            effective, source = True, "API default (ServiceAccount unset or not found)"
        resolved.append(
            {
                **token,
                "service_account_found": key in accounts,
                "service_account_automount": account_setting,
                "automount": effective,
                "automount_source": source,
            }
        )
    return resolved


# -- helpers -----------------------------------------------------------------------------------


def _present(objects: Mapping[str, list[K8sObject]]) -> set[tuple[str, str, str]]:
    """(kind, namespace, name) and ("uid", "", uid) of every collected workload object."""
    present: set[tuple[str, str, str]] = set()
    for kind in TEMPLATE_PATHS:
        for obj in objects.get(kind, []):
            present.add((kind, _namespace(obj.data), _name(obj.data)))
            uid = _map(obj.data.get("metadata")).get("uid")
            if isinstance(uid, str):
                present.add(("uid", "", uid))
    return present


def _controller(data: dict[str, Any]) -> dict[str, Any] | None:
    for ref in _list(_map(data.get("metadata")).get("ownerReferences")):
        if isinstance(ref, dict) and ref.get("controller") is True:
            return ref
    return None


def _owner_present(
    owner: dict[str, Any], namespace: str, present: set[tuple[str, str, str]]
) -> bool:
    uid = owner.get("uid")
    if isinstance(uid, str) and ("uid", "", uid) in present:
        return True
    return (str(owner.get("kind")), namespace, str(owner.get("name"))) in present


def _owner_label(owner: dict[str, Any] | None) -> str | None:
    """`Kind/name` of a controller that was not collected (the item stays, and says so)."""
    return f"{owner.get('kind')}/{owner.get('name')}" if owner else None


def _namespace(data: dict[str, Any]) -> str:
    return _str(_map(data.get("metadata")).get("namespace")) or "default"


def _name(data: dict[str, Any]) -> str:
    metadata = _map(data.get("metadata"))
    name = _str(metadata.get("name"))
    if name:
        return name
    generated = _str(metadata.get("generateName"))
    return f"{generated}*" if generated else "<unnamed>"


def _volume(volume: dict[str, Any]) -> tuple[str | None, str | None]:
    """(source type, hostPath path) of a volume; the type is the one source key it has (none:
    an emptyDir), and a hostPath's trailing `/` is dropped (/var/run/ is /var/run)."""
    kinds = [k for k, v in volume.items() if k != "name" and v is not None]
    host_path = volume.get("hostPath")
    path = _str(host_path.get("path")) if isinstance(host_path, dict) else None
    return (kinds[0] if kinds else None), ((path.rstrip("/") or "/") if path else None)


def _secret_env(container: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Names of env vars holding a literal credential (the redaction rules), and the Secrets
    the container takes through its environment."""
    values: list[str] = []
    refs: list[str] = []
    for entry in _list(container.get("env")):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            continue
        name = entry["name"]
        value = entry.get("value")
        value_from = _map(entry.get("valueFrom"))
        if isinstance(value, str) and value and not value_from and is_secret_value(name, value):
            values.append(name)
        secret = value_from.get("secretKeyRef")
        if isinstance(secret, dict):
            refs.append(f"{name} <- secret {secret.get('name')}/{secret.get('key')}")
    for entry in _list(container.get("envFrom")):
        secret = _map(entry).get("secretRef")
        if isinstance(secret, dict):
            refs.append(f"envFrom <- secret {secret.get('name')}")
    return values, refs


def _capabilities(value: Any) -> list[str]:
    names = [str(c).upper() for c in _list(value) if isinstance(c, str)]
    return [n[4:] if n.startswith("CAP_") else n for n in names]


def _resource_keys(value: Any) -> list[str]:
    return sorted(k for k, v in _map(value).items() if v not in (None, ""))


def _selinux(value: Any) -> dict[str, str] | None:
    options = _map(value)
    found = {
        k: options[k] for k in ("user", "role", "type", "level") if isinstance(options.get(k), str)
    }
    return found or None


def _profile(annotation: str | None) -> str | None:
    """A legacy seccomp/AppArmor annotation value as the field's profile type."""
    if annotation is None:
        return None
    if annotation in ("runtime/default", "docker/default"):
        return "RuntimeDefault"
    if annotation.startswith("localhost/"):
        return "Localhost"
    if annotation == "unconfined":
        return "Unconfined"
    return annotation


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _map(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
