"""Kubernetes facts, the same for a live API and an offline snapshot.

The target lists the objects of each resource kind once (paginated live, from files offline);
this module turns them into facts of lean items. Every fact names the resource kinds it needs:
a kind that could not be listed (403, 5xx) makes the facts that need it fail with the reason
("forbidden: needs list on networkpolicies.networking.k8s.io"), so only their checks become
`error`. Workloads are the exception: they come from nine kinds, and a kind that could not be
listed becomes one `_error` item while the workloads of the other kinds are still judged.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from auditor.collectors import k8s_rbac, k8s_workloads
from auditor.collectors.k8s_workloads import K8sObject, _int, _list, _map, _str
from auditor.facts import FactSpec, failed_fact, new_fact, utc_now
from auditor.model import Fact, Subject
from auditor.targets.kubernetes import (
    RESOURCES,
    ClusterTarget,
    Listing,
    Resource,
    ResourceError,
)

WORKLOAD_RESOURCES = (
    "pods",
    "podtemplates",
    "replicationcontrollers",
    "deployments",
    "statefulsets",
    "daemonsets",
    "replicasets",
    "jobs",
    "cronjobs",
)
RBAC_RESOURCES = ("roles", "clusterroles", "rolebindings", "clusterrolebindings")
ADMISSION_RESOURCES = (
    "validatingadmissionpolicies",
    "validatingadmissionpolicybindings",
    "validatingwebhookconfigurations",
    "mutatingwebhookconfigurations",
)
CONTROL_PLANE = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd")
PSA_PREFIX = "pod-security.kubernetes.io/"
IMPLIED_USERS_SHOWN = 3  # workloads named in an implied namespace's item
_SHELLS = frozenset({"sh", "bash", "ash", "dash"})


def _subject(item: Any) -> Subject:
    """Names a subject as `namespace/name` (or `name` for cluster-wide objects)."""
    data = item if isinstance(item, dict) else {}
    name = str(data.get("name", "?"))
    namespace = data.get("namespace")
    return Subject(
        kind=str(data.get("kind") or "?"),
        name=f"{namespace}/{name}" if namespace else name,
        id=data.get("uid") if isinstance(data.get("uid"), str) else None,
        location=data.get("location") if isinstance(data.get("location"), str) else None,
    )


@dataclass(frozen=True)
class _FactDef:
    description: str
    resources: tuple[str, ...]
    build: Callable[[_Context], Any]
    items: bool = True
    partial: bool = False  # a forbidden kind is an `_error` item, the other kinds are kept
    source: str = ""  # where the data comes from when no resource list holds it


class _Context:
    """What fact builders share for one collection: the listings and the target."""

    def __init__(self, target: ClusterTarget, listings: dict[str, Listing | ResourceError]):
        self.target = target
        self.listings = listings
        self._workloads: tuple[list[dict[str, Any]], list[dict[str, Any]]] | None = None
        self._control_plane: list[dict[str, Any]] | None = None

    def control_plane(self) -> list[dict[str, Any]]:
        """Every control-plane component found among the pods, worked out once."""
        if self._control_plane is None:
            self._control_plane = _control_plane_items(self)
        return self._control_plane

    def workloads(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Workload items and their token settings, worked out once for both facts."""
        if self._workloads is None:
            kinds = {RESOURCES[p].kind: self.objects(p) for p in WORKLOAD_RESOURCES}
            self._workloads = k8s_workloads.workload_items(kinds)
        return self._workloads

    def objects(self, plural: str) -> list[K8sObject]:
        listing = self.listings.get(plural)
        if not isinstance(listing, Listing):
            return []
        return [K8sObject(item, listing.location(i)) for i, item in enumerate(listing.items)]

    def failures(self, plurals: Collection[str]) -> list[tuple[str, ResourceError]]:
        return [(p, e) for p in plurals if isinstance(e := self.listings.get(p), ResourceError)]


# -- fact builders -----------------------------------------------------------------------------


def _namespaces(ctx: _Context) -> list[dict[str, Any]]:
    """Listed Namespaces and, for a snapshot, the ones its workloads use without a Namespace
    object in the files (`implied`): a live cluster lists every namespace, a snapshot rarely
    holds them, and their workloads are no less exposed."""
    items: list[dict[str, Any]] = []
    for obj in ctx.objects("namespaces"):
        metadata = _map(obj.data.get("metadata"))
        labels = {k: v for k, v in _map(metadata.get("labels")).items() if isinstance(v, str)}
        items.append(
            {
                "kind": "Namespace",
                "name": _str(metadata.get("name")) or "<unnamed>",
                "uid": _str(metadata.get("uid")),
                "location": obj.location,
                "labels": labels,
                "psa": _psa(labels),
                "implied": False,
                "used_by": [],
            }
        )
    if ctx.target.offline:
        items += _implied_namespaces(ctx, {item["name"] for item in items})
    return items


def _psa(labels: Mapping[str, str]) -> dict[str, str | None]:
    modes = ("enforce", "enforce-version", "audit", "audit-version", "warn", "warn-version")
    return {mode: labels.get(PSA_PREFIX + mode) for mode in modes}


def _implied_namespaces(ctx: _Context, listed: set[str]) -> list[dict[str, Any]]:
    """A namespace item for every namespace a snapshot's workloads use but do not define:
    no labels (none can be seen), and the first workloads using it, for the message."""
    users: dict[str, list[str]] = {}
    for workload in ctx.workloads()[0]:
        namespace = workload.get("namespace")
        if isinstance(namespace, str) and namespace not in listed:
            users.setdefault(namespace, []).append(f"{workload['kind']} {workload['name']}")
    return [
        {
            "kind": "Namespace",
            "name": name,
            "uid": None,
            "location": None,
            "labels": {},
            "psa": _psa({}),
            "implied": True,
            "used_by": used[:IMPLIED_USERS_SHOWN]
            + (
                [f"{len(used) - IMPLIED_USERS_SHOWN} more"]
                if len(used) > IMPLIED_USERS_SHOWN
                else []
            ),
        }
        for name, used in sorted(users.items())
    ]


def _version(ctx: _Context) -> dict[str, Any]:
    """The API server's version; a snapshot has none (checks then read the version the
    profile assumes, vars.k8s_snapshot_version)."""
    answer = ctx.target.server_version()
    if answer is None:
        return {"gitVersion": None, "major": None, "minor": None, "source": "snapshot"}
    return {
        "gitVersion": _str(answer.get("gitVersion")),
        "major": _str(answer.get("major")),
        "minor": _str(answer.get("minor")),
        "source": "GET /version",
    }


def _network_policies(ctx: _Context) -> list[dict[str, Any]]:
    """One item per namespace: the NetworkPolicies in it and whether they isolate all pods."""
    by_namespace: dict[str, list[dict[str, Any]]] = {}
    for obj in ctx.objects("networkpolicies"):
        policy = _policy_summary(obj)
        by_namespace.setdefault(policy.pop("namespace"), []).append(policy)
    items = []
    for namespace in _namespaces(ctx):
        policies = by_namespace.get(namespace["name"], [])
        items.append(
            {
                "kind": "Namespace",
                "name": namespace["name"],
                "uid": namespace["uid"],
                "location": namespace["location"],
                "implied": namespace["implied"],
                "used_by": namespace["used_by"],
                "policies": policies,
                "isolates_ingress": [p["name"] for p in policies if p["isolates_all_ingress"]],
                "isolates_egress": [p["name"] for p in policies if p["isolates_all_egress"]],
            }
        )
    return items


def _policy_summary(obj: K8sObject) -> dict[str, Any]:
    data = obj.data
    spec = _map(data.get("spec"))
    selector = _map(spec.get("podSelector"))
    selects_all = not _map(selector.get("matchLabels")) and not _list(
        selector.get("matchExpressions")
    )
    ingress = _list(spec.get("ingress"))
    egress = _list(spec.get("egress"))
    types = [t for t in _list(spec.get("policyTypes")) if isinstance(t, str)]
    if not types:  # the API's default: Ingress, plus Egress when egress rules are given
        types = ["Ingress", *(["Egress"] if egress else [])]
    open_ingress = any(_allows_all(rule, "from") for rule in ingress)
    open_egress = any(_allows_all(rule, "to") for rule in egress)
    return {
        "namespace": _namespace(data),
        "name": _name(data),
        "location": obj.location,
        "selects_all_pods": selects_all,
        "policy_types": types,
        "ingress_rules": len(ingress),
        "egress_rules": len(egress),
        "isolates_all_ingress": selects_all and "Ingress" in types and not open_ingress,
        "isolates_all_egress": selects_all and "Egress" in types and not open_egress,
    }


def _allows_all(rule: Any, peers: str) -> bool:
    """A rule without peers and without ports admits every connection."""
    rule = _map(rule)
    return not _list(rule.get(peers)) and not _list(rule.get("ports"))


def _workloads(ctx: _Context) -> list[dict[str, Any]]:
    items, _ = ctx.workloads()
    return _forbidden_items(ctx, WORKLOAD_RESOURCES) + items


def _workload_tokens(ctx: _Context) -> list[dict[str, Any]]:
    _, tokens = ctx.workloads()
    accounts = k8s_workloads.service_account_settings(ctx.objects("serviceaccounts"))
    return _forbidden_items(ctx, WORKLOAD_RESOURCES) + k8s_workloads.resolve_tokens(
        tokens, accounts
    )


def _services(ctx: _Context) -> list[dict[str, Any]]:
    items = []
    for obj in ctx.objects("services"):
        spec = _map(obj.data.get("spec"))
        ports = [_map(p) for p in _list(spec.get("ports"))]
        items.append(
            {
                **_identity("Service", obj),
                "type": _str(spec.get("type")),
                "node_ports": [p["nodePort"] for p in ports if _int(p.get("nodePort"))],
                "external_ips": [
                    ip for ip in _list(spec.get("externalIPs")) if isinstance(ip, str)
                ],
                "load_balancer_source_ranges": [
                    r for r in _list(spec.get("loadBalancerSourceRanges")) if isinstance(r, str)
                ],
            }
        )
    return items


def _ingresses(ctx: _Context) -> list[dict[str, Any]]:
    items = []
    for obj in ctx.objects("ingresses"):
        spec = _map(obj.data.get("spec"))
        rules = [_map(r) for r in _list(spec.get("rules"))]
        tls = [_map(t) for t in _list(spec.get("tls"))]
        items.append(
            {
                **_identity("Ingress", obj),
                "hosts": [r["host"] for r in rules if isinstance(r.get("host"), str)],
                "tls_hosts": [h for t in tls for h in _list(t.get("hosts")) if isinstance(h, str)],
                "tls": bool(tls),
                "ingress_class": _str(spec.get("ingressClassName")),
            }
        )
    return items


def _service_accounts(ctx: _Context) -> list[dict[str, Any]]:
    return [
        {
            **_identity("ServiceAccount", obj),
            "automount": obj.data.get("automountServiceAccountToken")
            if isinstance(obj.data.get("automountServiceAccountToken"), bool)
            else None,
        }
        for obj in ctx.objects("serviceaccounts")
    ]


def _roles(ctx: _Context) -> list[dict[str, Any]]:
    return k8s_rbac.role_items(ctx.objects("roles"), ctx.objects("clusterroles"))


def _role_bindings(ctx: _Context) -> list[dict[str, Any]]:
    return k8s_rbac.binding_items(ctx.objects("rolebindings"), ctx.objects("clusterrolebindings"))


def _rbac(ctx: _Context) -> list[dict[str, Any]]:
    return k8s_rbac.subject_items(
        *(ctx.objects(p) for p in RBAC_RESOURCES), offline=ctx.target.offline
    )


def _nodes(ctx: _Context) -> list[dict[str, Any]]:
    items = []
    for obj in ctx.objects("nodes"):
        status = _map(obj.data.get("status"))
        info = _map(status.get("nodeInfo"))
        runtime = _str(info.get("containerRuntimeVersion")) or ""
        runtime_name, _, runtime_version = runtime.partition("://")
        conditions = {
            str(c.get("type")): c.get("status")
            for c in (_map(c) for c in _list(status.get("conditions")))
            if isinstance(c.get("type"), str)
        }
        items.append(
            {
                **_identity("Node", obj),
                "namespace": None,
                "kubelet_version": _str(info.get("kubeletVersion")),
                "container_runtime": runtime or None,
                "runtime_name": runtime_name or None,
                "runtime_version": runtime_version or None,
                "kernel_version": _str(info.get("kernelVersion")),
                "os_image": _str(info.get("osImage")),
                "conditions": conditions,
                "unschedulable": _map(obj.data.get("spec")).get("unschedulable") is True,
            }
        )
    return items


class FactUnavailable(Exception):
    """A fact that cannot be built from what the target gave; its checks become `error`."""


def _control_plane(component: str) -> Callable[[_Context], list[dict[str, Any]]]:
    """Builder of the fact of one control-plane component: its instances running as (static)
    pods in kube-system, with their flags. A live cluster without any such pod (a managed
    control plane) cannot show the flags through the API: the fact fails with that reason.
    A snapshot only holds what it holds."""

    def build(ctx: _Context) -> list[dict[str, Any]]:
        items = [i for i in ctx.control_plane() if i["component"] == component]
        if not items and not ctx.target.offline:
            raise FactUnavailable(
                f"no {component} pod in kube-system: its flags cannot be read through the API "
                "(managed or non-kubeadm control plane; check them on the host or with the "
                "provider)"
            )
        return items

    return build


def _control_plane_items(ctx: _Context) -> list[dict[str, Any]]:
    items = []
    for obj in ctx.objects("pods"):
        if _namespace(obj.data) != "kube-system":
            continue
        found = _component(obj.data)
        if found is None:
            continue
        component, args, env = found
        flags = parse_flags(args)
        if component == "etcd":  # etcd reads ETCD_<FLAG> variables for flags not given
            for name, value in env.items():
                flag = name[len("ETCD_") :].lower().replace("_", "-")
                if name.startswith("ETCD_") and flag not in flags:
                    flags[flag] = value
        items.append(
            {
                "kind": "ControlPlaneComponent",
                "component": component,
                "name": f"{component} ({_name(obj.data)})",
                "namespace": None,
                "pod": _name(obj.data),
                "node": _str(_map(obj.data.get("spec")).get("nodeName")),
                "location": obj.location,
                "args": args,
                "flags": flags,
            }
        )
    return items


def _component(pod: dict[str, Any]) -> tuple[str, list[str], dict[str, str]] | None:
    """(component, its arguments, its literal env) when `pod` runs a control-plane binary."""
    labels = _map(_map(pod.get("metadata")).get("labels"))
    by_label = next(
        (labels[k] for k in ("component", "k8s-app") if labels.get(k) in CONTROL_PLANE), None
    )
    for container in (_map(c) for c in _list(_map(pod.get("spec")).get("containers"))):
        argv = [a for a in _list(container.get("command")) if isinstance(a, str)]
        argv += [a for a in _list(container.get("args")) if isinstance(a, str)]
        if argv and argv[0].rsplit("/", 1)[-1] in _SHELLS and "-c" in argv[1:]:
            script = argv[argv.index("-c") + 1] if argv.index("-c") + 1 < len(argv) else ""
            try:
                argv = shlex.split(script)
            except ValueError:
                argv = script.split()
        binary = argv[0].rsplit("/", 1)[-1] if argv and not argv[0].startswith("-") else None
        name = _str(container.get("name"))
        component = next((c for c in (binary, name, by_label) if c in CONTROL_PLANE), None)
        if component is None:
            continue
        args = argv[1:] if binary is not None else argv
        env = {
            e["name"]: e["value"]
            for e in (_map(e) for e in _list(container.get("env")))
            if isinstance(e.get("name"), str) and isinstance(e.get("value"), str)
        }
        return component, args, env
    return None


def parse_flags(args: list[str]) -> dict[str, str]:
    """Command-line flags as name -> value, the last one winning (Go's flag package):
    `--a=1` and `--a 1` give "1"; a bare `--a` gives "true"."""
    flags: dict[str, str] = {}
    index = 0
    while index < len(args):
        arg = args[index]
        if arg.startswith("-") and len(arg) > 1:
            key = arg.lstrip("-")
            if "=" in key:
                key, value = key.split("=", 1)
            elif index + 1 < len(args) and not args[index + 1].startswith("-"):
                index += 1
                value = args[index]
            else:
                value = "true"
            if key:
                flags[key] = value
        index += 1
    return flags


def _kubelet_config(ctx: _Context) -> list[dict[str, Any]]:
    nodes = [_name(o.data) for o in ctx.objects("nodes")]
    items = []
    for found in ctx.target.kubelet_configs(nodes):
        item: dict[str, Any] = {
            "kind": "Kubelet",
            "name": found.node,
            "namespace": None,
            "location": found.location,
            "source": found.source,
        }
        if found.error is not None:
            item["_error"] = found.error
        else:
            item["config"] = found.config
        items.append(item)
    return items


def _admission(ctx: _Context) -> dict[str, Any]:
    bindings = [
        {
            "name": _name(o.data),
            "policy": _str(_map(o.data.get("spec")).get("policyName")),
            "actions": [
                a
                for a in _list(_map(o.data.get("spec")).get("validationActions"))
                if isinstance(a, str)
            ],
        }
        for o in ctx.objects("validatingadmissionpolicybindings")
    ]
    bound = {b["policy"] for b in bindings}
    policies = [
        {
            "name": _name(o.data),
            "failure_policy": _str(_map(o.data.get("spec")).get("failurePolicy")) or "Fail",
            "bound": _name(o.data) in bound,
            "location": o.location,
        }
        for o in ctx.objects("validatingadmissionpolicies")
    ]
    served = {
        p: listing.served
        for p in ADMISSION_RESOURCES
        if isinstance(listing := ctx.listings.get(p), Listing)
    }
    return {
        "validating_admission_policies": policies,
        "validating_admission_policy_bindings": bindings,
        "validating_webhooks": _webhooks(ctx.objects("validatingwebhookconfigurations")),
        "mutating_webhooks": _webhooks(ctx.objects("mutatingwebhookconfigurations")),
        "served": served,
    }


def _webhooks(configurations: list[K8sObject]) -> list[dict[str, Any]]:
    hooks = []
    for obj in configurations:
        for hook in (_map(h) for h in _list(obj.data.get("webhooks"))):
            rules = [_map(r) for r in _list(hook.get("rules"))]
            covers_pods = any(
                {"pods", "*"} & set(_strings(r.get("resources")))
                and {"CREATE", "*"} & set(_strings(r.get("operations")))
                for r in rules
            )
            hooks.append(
                {
                    "configuration": _name(obj.data),
                    "name": _str(hook.get("name")),
                    "failure_policy": _str(hook.get("failurePolicy")) or "Fail",
                    "covers_pod_creation": covers_pods,
                    "location": obj.location,
                }
            )
    return hooks


FACTS: dict[str, _FactDef] = {
    "k8s.version": _FactDef(
        'The API server\'s version (GET /version): {"gitVersion": "v1.31.4", "major": "1", '
        '"minor": "31", "source": "GET /version"}; a snapshot\'s gitVersion is null',
        (),
        _version,
        items=False,
        source="GET /version (live clusters; a snapshot has no server)",
    ),
    "k8s.namespaces": _FactDef(
        "Namespaces with their labels and Pod Security Admission modes, and in a snapshot the "
        "namespaces its workloads use without defining them (implied, no labels): "
        '[{"name": "shop", "labels": {...}, "psa": {"enforce": "baseline", ...}, '
        '"implied": false, "used_by": []}]',
        ("namespaces",),
        _namespaces,
    ),
    "k8s.networkpolicies": _FactDef(
        "Per namespace, its NetworkPolicies and the ones isolating all of its pods: "
        '[{"name": "shop", "policies": [...], "isolates_ingress": ["default-deny"], ...}]',
        ("namespaces", "networkpolicies"),
        _network_policies,
    ),
    "k8s.workloads": _FactDef(
        "One item per pod template (bare Pods and the templates of controllers), attributed "
        'to its owner: [{"kind": "Deployment", "namespace": "shop", "name": "web", '
        '"host_network": false, "containers": [{"name": "web", "privileged": null, ...}]}]',
        WORKLOAD_RESOURCES,
        _workloads,
        partial=True,
    ),
    "k8s.workload_tokens": _FactDef(
        "Per workload, whether its pods mount a ServiceAccount token and why: "
        '[{"kind": "Deployment", "name": "web", "service_account": "default", '
        '"automount": true, "automount_source": "API default ..."}]',
        (*WORKLOAD_RESOURCES, "serviceaccounts"),
        _workload_tokens,
        partial=True,
    ),
    "k8s.services": _FactDef(
        'Services: [{"namespace": "shop", "name": "web", "type": "NodePort", '
        '"node_ports": [30080], "external_ips": []}]',
        ("services",),
        _services,
    ),
    "k8s.ingresses": _FactDef(
        'Ingresses: [{"namespace": "shop", "name": "web", "hosts": [...], "tls": true}]',
        ("ingresses",),
        _ingresses,
    ),
    "k8s.serviceaccounts": _FactDef(
        'ServiceAccounts: [{"namespace": "shop", "name": "default", "automount": null}]',
        ("serviceaccounts",),
        _service_accounts,
    ),
    "k8s.roles": _FactDef(
        "Roles and ClusterRoles with their rules: "
        '[{"kind": "ClusterRole", "name": "ops", "bootstrap": false, "rules": [...]}]',
        ("roles", "clusterroles"),
        _roles,
    ),
    "k8s.rolebindings": _FactDef(
        "RoleBindings and ClusterRoleBindings: "
        '[{"kind": "ClusterRoleBinding", "name": "x", "role_ref": {"kind": "ClusterRole", '
        '"name": "cluster-admin"}, "subjects": [{"kind": "User", "name": "jane", ...}]}]',
        ("rolebindings", "clusterrolebindings"),
        _role_bindings,
    ),
    "k8s.rbac": _FactDef(
        "Effective permissions of every bound subject: "
        '[{"kind": "ServiceAccount", "namespace": "ci", "name": "deployer", '
        '"grants": {"read_secrets": [{"scope": "*", "binding": "...", "role": "...", '
        '"bootstrap": false}], "escalate": [], ...}}]',
        RBAC_RESOURCES,
        _rbac,
    ),
    "k8s.nodes": _FactDef(
        'Nodes: [{"name": "n1", "kubelet_version": "v1.31.2", "runtime_name": "containerd", '
        '"runtime_version": "1.7.22", "conditions": {"Ready": "True"}}]',
        ("nodes",),
        _nodes,
    ),
    "k8s.apiserver": _FactDef(
        "kube-apiserver instances running as pods in kube-system, with their flags: "
        '[{"name": "kube-apiserver (kube-apiserver-cp-1)", "node": "cp-1", '
        '"args": [...], "flags": {"anonymous-auth": "false", ...}}]',
        ("pods",),
        _control_plane("kube-apiserver"),
    ),
    "k8s.controller_manager": _FactDef(
        "kube-controller-manager instances in kube-system, with their flags (as k8s.apiserver)",
        ("pods",),
        _control_plane("kube-controller-manager"),
    ),
    "k8s.scheduler": _FactDef(
        "kube-scheduler instances in kube-system, with their flags (as k8s.apiserver)",
        ("pods",),
        _control_plane("kube-scheduler"),
    ),
    "k8s.etcd": _FactDef(
        "etcd members running as pods in kube-system, with their flags; ETCD_* variables "
        "fill flags not given on the command line (as k8s.apiserver)",
        ("pods",),
        _control_plane("etcd"),
    ),
    "k8s.kubelet_config": _FactDef(
        "Kubelet configuration per node (node proxy configz, or KubeletConfiguration files in "
        'a snapshot): [{"name": "n1", "config": {"readOnlyPort": 0, ...}}]',
        ("nodes",),
        _kubelet_config,
    ),
    "k8s.admission": _FactDef(
        "Admission control visible from the API: "
        '{"validating_admission_policies": [...], "validating_webhooks": [{"name": ..., '
        '"covers_pod_creation": true, "failure_policy": "Fail"}], ...}',
        ADMISSION_RESOURCES,
        _admission,
        items=False,
    ),
}


class KubernetesCollector:
    """Gathers k8s.* facts from a ClusterTarget (live API or snapshot)."""

    facts: Mapping[str, FactSpec] = {
        name: FactSpec(name, d.description, subject=_subject if d.items else None)
        for name, d in FACTS.items()
    }

    def collect(
        self, target: Any, names: Collection[str], variables: Mapping[str, Any]
    ) -> dict[str, Fact]:
        assert isinstance(target, ClusterTarget)
        wanted = [n for n in FACTS if n in names]
        started = utc_now()
        plurals = dict.fromkeys(p for n in wanted for p in _needs(n, target))
        listings: dict[str, Listing | ResourceError] = {}
        for plural in plurals:
            try:
                listings[plural] = target.list_objects(RESOURCES[plural])
            except ResourceError as exc:
                listings[plural] = exc
        ctx = _Context(target, listings)
        problems = [
            {
                "kind": "File",
                "name": location.rsplit(":", 1)[0],
                "location": location,
                "_error": f"{location}: {reason}",
            }
            for location, reason in target.problems()
        ]
        facts: dict[str, Fact] = {}
        for name in wanted:
            definition = FACTS[name]
            resources = _needs(name, target)
            source = _source(listings, resources) or definition.source
            failures = ctx.failures(resources)
            if definition.partial:
                failures = [(p, e) for p, e in failures if p not in WORKLOAD_RESOURCES]
            if failures:
                facts[name] = failed_fact(name, target.name, str(failures[0][1]), source=source)
                continue
            try:
                data = definition.build(ctx)
            except FactUnavailable as exc:
                facts[name] = failed_fact(name, target.name, str(exc), source=source)
                continue
            except Exception as exc:  # a normaliser bug is an error result, not a crash
                reason = f"could not normalise: {type(exc).__name__}: {exc}"
                facts[name] = failed_fact(name, target.name, reason, source=source)
                continue
            if definition.items:
                data = data + problems
            facts[name] = new_fact(
                name, target.name, data, source=source, status=200, collected_at=started
            )
        return facts


def _needs(name: str, target: ClusterTarget) -> tuple[str, ...]:
    """The resource kinds fact `name` is built from; a snapshot's kubelet configuration is in
    its files, not behind its nodes."""
    if name == "k8s.kubelet_config" and target.offline:
        return ()
    if name in ("k8s.namespaces", "k8s.networkpolicies") and target.offline:
        return (*FACTS[name].resources, *WORKLOAD_RESOURCES)  # for the implied namespaces
    return FACTS[name].resources


def _forbidden_items(ctx: _Context, plurals: Collection[str]) -> list[dict[str, Any]]:
    return [
        {"kind": RESOURCES[p].kind, "name": f"(all {p})", "namespace": None, "_error": str(e)}
        for p, e in ctx.failures(plurals)
    ]


def _source(listings: Mapping[str, Listing | ResourceError], plurals: Collection[str]) -> str:
    parts = []
    for plural in plurals:
        listing = listings.get(plural)
        if isinstance(listing, Listing):
            parts.append(listing.source)
        elif isinstance(listing, ResourceError):
            parts.append(listing.source or plural)
    return "; ".join(dict.fromkeys(parts))


def _identity(kind: str, obj: K8sObject) -> dict[str, Any]:
    metadata = _map(obj.data.get("metadata"))
    return {
        "kind": kind,
        "namespace": _namespace(obj.data) if RESOURCES_BY_KIND[kind].namespaced else None,
        "name": _name(obj.data),
        "uid": metadata.get("uid") if isinstance(metadata.get("uid"), str) else None,
        "location": obj.location,
    }


RESOURCES_BY_KIND: dict[str, Resource] = {r.kind: r for r in RESOURCES.values()}


def _namespace(data: Mapping[str, Any]) -> str:
    return _str(_map(data.get("metadata")).get("namespace")) or "default"


def _name(data: Mapping[str, Any]) -> str:
    return _str(_map(data.get("metadata")).get("name")) or "<unnamed>"


def _strings(value: Any) -> list[str]:
    return [v for v in _list(value) if isinstance(v, str)]
