"""Kubernetes RBAC: roles, bindings, and the effective permissions of every bound subject.

Permissions are worked out the way the API server's RBAC authorizer grants them: a rule
matches a request when its verbs, API groups and resources hold the requested ones or `*`
(and `*/subresource` for any resource's subresource); a RoleBinding grants in its namespace,
a ClusterRoleBinding everywhere. ServiceAccounts and users also hold what their implicit
groups hold (system:serviceaccounts, system:serviceaccounts:NS, system:authenticated).
Aggregated ClusterRoles are assembled from their selectors when the manifests leave their
rules empty (the API server fills them in live clusters). The result is a list of sensitive
capabilities per subject, each with the binding and role that grant it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from auditor.collectors.k8s_workloads import K8sObject

BOOTSTRAP_LABEL = "kubernetes.io/bootstrapping"  # "rbac-defaults": the API server's own objects
_CORE, _RBAC, _APPS, _BATCH = "", "rbac.authorization.k8s.io", "apps", "batch"
_ANY = frozenset({"*"})


@dataclass(frozen=True)
class Need:
    """A request that, when allowed, gives a capability: one of `verbs` (None: any verb) on one
    of `resources` of `group`. `named` says whether a rule limited by resourceNames counts."""

    verbs: frozenset[str] | None
    group: str
    resources: tuple[str, ...]
    named: bool = True


# Sensitive capabilities (CIS Kubernetes 5.1.x) and the requests that grant them.
CAPABILITIES: dict[str, tuple[Need, ...]] = {
    "read_secrets": (Need(frozenset({"get", "list", "watch"}), _CORE, ("secrets",), named=False),),
    "escalate": (Need(frozenset({"escalate"}), _RBAC, ("roles", "clusterroles")),),
    "bind": (Need(frozenset({"bind"}), _RBAC, ("roles", "clusterroles")),),
    "impersonate": (
        Need(frozenset({"impersonate"}), _CORE, ("users", "groups", "serviceaccounts")),
        Need(frozenset({"impersonate"}), "authentication.k8s.io", ("uids",)),
    ),
    "pods_exec": (Need(frozenset({"create", "get"}), _CORE, ("pods/exec", "pods/attach")),),
    "nodes_proxy": (Need(None, _CORE, ("nodes/proxy",)),),
    "create_workloads": (
        Need(frozenset({"create"}), _CORE, ("pods", "replicationcontrollers"), named=False),
        Need(
            frozenset({"create"}),
            _APPS,
            ("deployments", "daemonsets", "statefulsets", "replicasets"),
            named=False,
        ),
        Need(frozenset({"create"}), _BATCH, ("jobs", "cronjobs"), named=False),
    ),
    "create_tokens": (Need(frozenset({"create"}), _CORE, ("serviceaccounts/token",)),),
    "approve_csr": (
        Need(
            frozenset({"update", "patch"}),
            "certificates.k8s.io",
            ("certificatesigningrequests/approval",),
        ),
    ),
    "webhook_config": (
        Need(
            frozenset({"create", "update", "patch", "delete"}),
            "admissionregistration.k8s.io",
            ("validatingwebhookconfigurations", "mutatingwebhookconfigurations"),
        ),
    ),
    "create_persistent_volumes": (
        Need(frozenset({"create"}), _CORE, ("persistentvolumes",), named=False),
    ),
    "wildcard": (),  # a rule with `*` in verbs, apiGroups or resources; computed apart
}

# Default ClusterRoles that snapshots reference without shipping (summarised from the
# Kubernetes bootstrap policy); used only when a snapshot lacks the role itself.
_ALL = {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}
_WRITE = ["create", "delete", "deletecollection", "patch", "update"]
_READ = ["get", "list", "watch"]
_WORKLOADS = {
    "apiGroups": ["", "apps", "batch"],
    "resources": [
        "pods",
        "replicationcontrollers",
        "deployments",
        "daemonsets",
        "statefulsets",
        "replicasets",
        "jobs",
        "cronjobs",
    ],
    "verbs": _READ + _WRITE,
}
_EDIT = [
    _WORKLOADS,
    {
        "apiGroups": [""],
        "resources": ["secrets", "configmaps", "services"],
        "verbs": _READ + _WRITE,
    },
    {"apiGroups": [""], "resources": ["pods/exec", "pods/attach"], "verbs": ["create", "get"]},
    {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"]},
]
DEFAULT_CLUSTER_ROLES: dict[str, list[dict[str, Any]]] = {
    "cluster-admin": [_ALL, {"nonResourceURLs": ["*"], "verbs": ["*"]}],
    "admin": [
        *_EDIT,
        {
            "apiGroups": [_RBAC],
            "resources": ["roles", "rolebindings"],
            "verbs": _READ + _WRITE,
        },
    ],
    "edit": _EDIT,
    "view": [
        {"apiGroups": ["", "apps", "batch"], "resources": ["pods", "services"], "verbs": _READ}
    ],
}


def role_items(
    roles: Iterable[K8sObject], cluster_roles: Iterable[K8sObject]
) -> list[dict[str, Any]]:
    """One item per Role and ClusterRole: its rules (lean) and whether it is a bootstrap role."""
    index = _RoleIndex(roles, cluster_roles, offline=False)
    items = []
    for kind, key, obj in index.all():
        items.append(
            {
                "kind": kind,
                "namespace": key[0] or None,
                "name": key[1],
                "location": obj.location,
                "bootstrap": _bootstrap(obj.data),
                "aggregated": isinstance(obj.data.get("aggregationRule"), dict),
                "rules": [_lean_rule(r) for r in index.rules(kind, key) or []],
            }
        )
    return items


def binding_items(
    bindings: Iterable[K8sObject], cluster_bindings: Iterable[K8sObject]
) -> list[dict[str, Any]]:
    """One item per RoleBinding and ClusterRoleBinding: the role it grants and to whom."""
    items = []
    for kind, objects in (("RoleBinding", bindings), ("ClusterRoleBinding", cluster_bindings)):
        for obj in objects:
            data = obj.data
            namespace = _namespace(data) if kind == "RoleBinding" else None
            role_ref = _map(data.get("roleRef"))
            items.append(
                {
                    "kind": kind,
                    "namespace": namespace,
                    "name": _name(data),
                    "location": obj.location,
                    "bootstrap": _bootstrap(data),
                    "role_ref": {
                        "kind": _str(role_ref.get("kind")),
                        "name": _str(role_ref.get("name")),
                    },
                    "subjects": [
                        _subject(s, namespace)
                        for s in _list(data.get("subjects"))
                        if isinstance(s, dict)
                    ],
                }
            )
    return items


def subject_items(
    roles: Iterable[K8sObject],
    cluster_roles: Iterable[K8sObject],
    bindings: Iterable[K8sObject],
    cluster_bindings: Iterable[K8sObject],
    *,
    offline: bool,
) -> list[dict[str, Any]]:
    """The effective permissions of every subject named in a binding (users, groups, service
    accounts): each sensitive capability with the bindings and roles that grant it, and the
    scope (`*` for cluster-wide, else the namespace)."""
    index = _RoleIndex(roles, cluster_roles, offline=offline)
    grants_by_subject: dict[str, _Subject] = {}
    for binding in binding_items(bindings, cluster_bindings):
        role_ref = binding["role_ref"]
        scope = binding["namespace"] or "*"
        role_key = (binding["namespace"] or "", role_ref["name"] or "")
        if role_ref["kind"] == "ClusterRole":
            role_key = ("", role_ref["name"] or "")
        rules = index.rules(role_ref["kind"] or "", role_key)
        role_label = f"{role_ref['kind']}/{role_ref['name']}"
        found = rules is not None
        grant = {
            "binding": f"{binding['kind']}/{_qualified(binding['namespace'], binding['name'])}",
            "role": role_label,
            "scope": scope,
            "bootstrap": binding["bootstrap"],
        }
        capabilities = capabilities_of(rules or [])
        for subject in binding["subjects"]:
            entry = grants_by_subject.get(subject["ref"])
            if entry is None:
                entry = grants_by_subject[subject["ref"]] = _Subject(subject, binding["location"])
            entry.add(grant, capabilities, found)
    _inherit_groups(grants_by_subject)
    return [entry.item() for entry in grants_by_subject.values()]


def capabilities_of(rules: Iterable[Mapping[str, Any]]) -> set[str]:
    """The sensitive capabilities a set of rules grants."""
    found: set[str] = set()
    for rule in rules:
        verbs = set(_strings(rule.get("verbs")))
        groups = set(_strings(rule.get("apiGroups")))
        resources = set(_strings(rule.get("resources")))
        if not resources:
            continue  # a nonResourceURLs rule grants no API object
        if "*" in verbs or "*" in groups or "*" in resources:
            found.add("wildcard")
        named = bool(_strings(rule.get("resourceNames")))
        for capability, needs in CAPABILITIES.items():
            if capability in found:
                continue
            if any(_allows(need, verbs, groups, resources, named) for need in needs):
                found.add(capability)
    return found


def _allows(
    need: Need, verbs: set[str], groups: set[str], resources: set[str], named: bool
) -> bool:
    if named and not need.named:
        return False
    if need.verbs is not None and not (verbs & (need.verbs | _ANY)):
        return False
    if need.group not in groups and "*" not in groups:
        return False
    return any(_resource_matches(resources, wanted) for wanted in need.resources)


def _resource_matches(resources: set[str], wanted: str) -> bool:
    """RBAC's ResourceMatches: `*`, the exact resource[/subresource], or `*/subresource`."""
    if "*" in resources or wanted in resources:
        return True
    _, slash, subresource = wanted.partition("/")
    return bool(slash) and f"*/{subresource}" in resources


class _Subject:
    """The grants collected for one subject."""

    def __init__(self, subject: dict[str, Any], location: str | None) -> None:
        self.subject = subject
        self.location = location
        self.bindings: list[dict[str, Any]] = []
        self.grants: dict[str, list[dict[str, Any]]] = {c: [] for c in CAPABILITIES}
        self.unresolved: list[str] = []

    def add(
        self, grant: dict[str, Any], capabilities: set[str], found: bool, via: str = ""
    ) -> None:
        self.bindings.append({**grant, "via": via} if via else grant)
        if not found and grant["role"] not in self.unresolved:
            self.unresolved.append(grant["role"])
        for capability in capabilities:
            self.grants[capability].append({**grant, "via": via} if via else grant)

    def item(self) -> dict[str, Any]:
        return {
            **self.subject,
            "location": self.location,
            "bindings": self.bindings,
            "grants": self.grants,
            "unresolved_roles": self.unresolved,
        }


def _inherit_groups(subjects: dict[str, _Subject]) -> None:
    """Give service accounts and users what their implicit groups were granted."""
    groups = {ref: s for ref, s in subjects.items() if s.subject["kind"] == "Group"}
    for subject in subjects.values():
        kind = subject.subject["kind"]
        implicit = ["Group:system:authenticated"] if kind in ("User", "ServiceAccount") else []
        if kind == "ServiceAccount":
            namespace = subject.subject["namespace"]
            implicit += [
                "Group:system:serviceaccounts",
                f"Group:system:serviceaccounts:{namespace}",
            ]
        for group_ref in implicit:
            group = groups.get(group_ref)
            if group is None:
                continue
            via = group_ref
            for binding in list(group.bindings):
                if binding.get("via"):
                    continue
                capabilities = {c for c, grants in group.grants.items() if binding in grants}
                subject.add(binding, capabilities, binding["role"] not in group.unresolved, via)


class _RoleIndex:
    """Roles by (namespace, name) and cluster roles by ("", name), aggregation resolved."""

    def __init__(
        self, roles: Iterable[K8sObject], cluster_roles: Iterable[K8sObject], *, offline: bool
    ) -> None:
        self.offline = offline
        self.roles = {(_namespace(o.data), _name(o.data)): o for o in roles}
        self.cluster_roles = {("", _name(o.data)): o for o in cluster_roles}
        self._aggregated: dict[str, list[dict[str, Any]]] = {}

    def all(self) -> Iterable[tuple[str, tuple[str, str], K8sObject]]:
        for key, obj in self.roles.items():
            yield "Role", key, obj
        for key, obj in self.cluster_roles.items():
            yield "ClusterRole", key, obj

    def rules(self, kind: str, key: tuple[str, str]) -> list[dict[str, Any]] | None:
        """The rules of a role; None when the role does not exist."""
        if kind == "Role":
            obj = self.roles.get(key)
            return _rules(obj.data) if obj else None
        if kind != "ClusterRole":
            return None
        obj = self.cluster_roles.get(key)
        if obj is None:
            default = DEFAULT_CLUSTER_ROLES.get(key[1])
            return list(default) if self.offline and default is not None else None
        own = _rules(obj.data)
        aggregation = obj.data.get("aggregationRule")
        if own or not isinstance(aggregation, dict):
            return own
        return self._aggregate(key[1], aggregation)

    def _aggregate(self, name: str, aggregation: dict[str, Any]) -> list[dict[str, Any]]:
        if name in self._aggregated:
            return self._aggregated[name]
        self._aggregated[name] = []  # guards against aggregation cycles
        selectors = [
            s for s in _list(aggregation.get("clusterRoleSelectors")) if isinstance(s, dict)
        ]
        rules: list[dict[str, Any]] = []
        for (_, other_name), other in self.cluster_roles.items():
            if other_name == name:
                continue
            labels = _map(_map(other.data.get("metadata")).get("labels"))
            if any(_selects(selector, labels) for selector in selectors):
                rules.extend(self.rules("ClusterRole", ("", other_name)) or [])
        self._aggregated[name] = rules
        return rules


def _selects(selector: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    """A label selector (matchLabels and matchExpressions) applied to `labels`."""
    match_labels = _map(selector.get("matchLabels"))
    if any(labels.get(k) != v for k, v in match_labels.items()):
        return False
    for raw in _list(selector.get("matchExpressions")):
        expression = _map(raw)
        key, operator = str(expression.get("key")), expression.get("operator")
        values = _strings(expression.get("values"))
        present = key in labels
        value = labels.get(key)
        if operator == "In" and not (present and value in values):
            return False
        if operator == "NotIn" and present and value in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return bool(match_labels) or bool(_list(selector.get("matchExpressions")))


def _subject(subject: dict[str, Any], binding_namespace: str | None) -> dict[str, Any]:
    kind = _str(subject.get("kind")) or "?"
    name = _str(subject.get("name")) or "?"
    if kind == "ServiceAccount":
        namespace = _str(subject.get("namespace")) or binding_namespace or "default"
        return {
            "kind": kind,
            "name": name,
            "namespace": namespace,
            "ref": f"{kind}:{namespace}/{name}",
        }
    return {"kind": kind, "name": name, "namespace": None, "ref": f"{kind}:{name}"}


def _lean_rule(rule: Mapping[str, Any]) -> dict[str, list[str]]:
    keys = ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs")
    return {k: _strings(rule.get(k)) for k in keys if rule.get(k) is not None}


def _rules(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [r for r in _list(data.get("rules")) if isinstance(r, dict)]


def _bootstrap(data: Mapping[str, Any]) -> bool:
    labels = _map(_map(data.get("metadata")).get("labels"))
    return labels.get(BOOTSTRAP_LABEL) == "rbac-defaults"


def _qualified(namespace: str | None, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name


def _namespace(data: Mapping[str, Any]) -> str:
    return _str(_map(data.get("metadata")).get("namespace")) or "default"


def _name(data: Mapping[str, Any]) -> str:
    return _str(_map(data.get("metadata")).get("name")) or "<unnamed>"


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _map(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
