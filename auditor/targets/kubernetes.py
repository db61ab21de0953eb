"""Kubernetes clusters: the live API target (`k8s://[context]`) and what every cluster source gives.

A cluster source (live API or offline snapshot) hands the collector "the objects of resource X"
as raw API dictionaries; the collector normalises them. The live target pages through list
calls (`limit` / `continue`) with the official client's configuration (kubeconfig, context,
in-cluster service account, TLS as the kubeconfig says) and a timeout on every request.
"""

from __future__ import annotations

import abc
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, unquote

from auditor.config import TargetSpec
from auditor.errors import CollectionError, InputError, TargetError
from auditor.model import TargetKind
from auditor.targets.base import Target
from auditor.yamlsrc import load_yaml

PAGE_SIZE = 500  # objects per list call
MAX_PAGES = 10_000  # a server that keeps answering with a continue token is broken or hostile
MAX_RESPONSE_BYTES = 256 * 1024 * 1024  # one page; more than any sane page of 500 objects


@dataclass(frozen=True)
class Resource:
    """One kind of API object the collector reads: where it is served and what it is called."""

    plural: str
    kind: str
    group: str = ""  # "" is the core group
    versions: tuple[str, ...] = ("v1",)  # tried in order; the first one served wins
    namespaced: bool = True
    legacy_groups: tuple[str, ...] = ()  # groups older manifests use for the same kind

    @property
    def rbac_name(self) -> str:
        """The name RBAC rules and `kubectl auth can-i` use: pods, deployments.apps."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def path(self, version: str) -> str:
        prefix = f"/apis/{self.group}/{version}" if self.group else f"/api/{version}"
        return f"{prefix}/{self.plural}"

    def accepts(self, group: str | None) -> bool:
        """Whether a manifest of this kind in API group `group` (None: unknown) is one of ours."""
        return group is None or group == self.group or group in self.legacy_groups


_RBAC = "rbac.authorization.k8s.io"
_ADMISSION = "admissionregistration.k8s.io"

RESOURCES: dict[str, Resource] = {
    r.plural: r
    for r in (
        Resource("namespaces", "Namespace", namespaced=False),
        Resource("pods", "Pod"),
        Resource("podtemplates", "PodTemplate"),
        Resource("replicationcontrollers", "ReplicationController"),
        Resource("deployments", "Deployment", "apps", legacy_groups=("extensions",)),
        Resource("statefulsets", "StatefulSet", "apps"),
        Resource("daemonsets", "DaemonSet", "apps", legacy_groups=("extensions",)),
        Resource("replicasets", "ReplicaSet", "apps", legacy_groups=("extensions",)),
        Resource("jobs", "Job", "batch"),
        Resource("cronjobs", "CronJob", "batch", ("v1", "v1beta1")),
        Resource("services", "Service"),
        Resource(
            "ingresses",
            "Ingress",
            "networking.k8s.io",
            ("v1", "v1beta1"),
            legacy_groups=("extensions",),
        ),
        Resource(
            "networkpolicies", "NetworkPolicy", "networking.k8s.io", legacy_groups=("extensions",)
        ),
        Resource("serviceaccounts", "ServiceAccount"),
        Resource("roles", "Role", _RBAC),
        Resource("clusterroles", "ClusterRole", _RBAC, namespaced=False),
        Resource("rolebindings", "RoleBinding", _RBAC),
        Resource("clusterrolebindings", "ClusterRoleBinding", _RBAC, namespaced=False),
        Resource("nodes", "Node", namespaced=False),
        Resource(
            "validatingadmissionpolicies",
            "ValidatingAdmissionPolicy",
            _ADMISSION,
            ("v1", "v1beta1"),
            namespaced=False,
        ),
        Resource(
            "validatingadmissionpolicybindings",
            "ValidatingAdmissionPolicyBinding",
            _ADMISSION,
            ("v1", "v1beta1"),
            namespaced=False,
        ),
        Resource(
            "validatingwebhookconfigurations",
            "ValidatingWebhookConfiguration",
            _ADMISSION,
            namespaced=False,
        ),
        Resource(
            "mutatingwebhookconfigurations",
            "MutatingWebhookConfiguration",
            _ADMISSION,
            namespaced=False,
        ),
    )
}


@dataclass
class Listing:
    """The objects of one resource kind, as the API (or the manifests) had them."""

    resource: Resource
    items: list[dict[str, Any]]
    source: str  # the API calls made, or the snapshot they came from
    locations: list[str | None] = field(default_factory=list)  # file:line per item (snapshots)
    served: bool = True  # False: the API server does not serve this kind at all
    status: int | None = 200

    def location(self, index: int) -> str | None:
        return self.locations[index] if index < len(self.locations) else None


@dataclass(frozen=True)
class KubeletConfig:
    """One kubelet's configuration (configz, or a KubeletConfiguration file), or why not."""

    node: str
    location: str | None
    config: dict[str, Any] | None
    error: str | None
    source: str


class ResourceError(CollectionError):
    """One resource kind could not be read; checks that need it become `error`."""

    def __init__(self, message: str, *, status: int | None = None, source: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.source = source


class ClusterTarget(Target):
    """A Kubernetes cluster as the collector sees it: lists of objects per resource kind."""

    kind = TargetKind.KUBERNETES
    offline: ClassVar[bool]  # snapshots: what the files do not hold does not exist

    @abc.abstractmethod
    def list_objects(self, resource: Resource) -> Listing:
        """Every object of `resource`; ResourceError when it cannot be read (403, 5xx ...)."""

    @abc.abstractmethod
    def kubelet_configs(self, nodes: list[str]) -> list[KubeletConfig]:
        """The configuration of the kubelets of `nodes`, each or why it could not be read."""

    def problems(self) -> list[tuple[str, str]]:
        """(location, reason) for input the source could not read; a live API has none."""
        return []

    def server_version(self) -> dict[str, Any] | None:
        """The API server's GET /version answer; None for a snapshot, which has no server."""
        return None


def context_of(spec: TargetSpec) -> str | None:
    """The kubeconfig context named by `k8s://CONTEXT` (percent-decoded); None = current."""
    return unquote(spec.address.rest) or None


def kubeconfig_paths(explicit: str | None) -> list[Path]:
    """Where the kubeconfig comes from: --kubeconfig, else $KUBECONFIG (a path list), else
    ~/.kube/config. Only files that exist are returned."""
    if explicit:
        return [Path(explicit).expanduser()]
    listed = os.environ.get("KUBECONFIG", "")
    candidates = [Path(p).expanduser() for p in listed.split(os.pathsep) if p] or [
        Path("~/.kube/config").expanduser()
    ]
    return [p for p in candidates if p.is_file()]


class KubernetesTarget(ClusterTarget):
    """A live cluster through its API server, read-only (get and list only)."""

    offline = False

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        self.context = context_of(spec)
        self._client: Any = None  # kubernetes.client.ApiClient
        self.server = ""
        self.version: dict[str, Any] = {}

    # -- connection --------------------------------------------------------------------------

    def connect(self) -> None:
        import yaml
        from kubernetes import client, config  # the client is heavy: import on first use
        from kubernetes.config.config_exception import ConfigException

        configuration = client.Configuration()
        paths = kubeconfig_paths(self.spec.kubeconfig)
        for path in paths:  # through our bounded loader first: the client's has no bounds
            try:
                load_yaml(path)
            except InputError as exc:
                at = f" at line {exc.line}" if exc.line else ""
                reason = f"kubeconfig could not be read: {path}: {exc.reason}{at}"
                raise TargetError(reason) from exc
        try:
            if paths:
                config.load_kube_config(  # type: ignore[no-untyped-call]
                    config_file=os.pathsep.join(str(p) for p in paths),
                    context=self.context,
                    client_configuration=configuration,
                    persist_config=False,
                )
            elif self.context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
                config.load_incluster_config(  # type: ignore[no-untyped-call]
                    client_configuration=configuration
                )
            else:
                where = self.spec.kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
                raise TargetError(
                    f"no kubeconfig found at {where}",
                    hint="pass --kubeconfig FILE or set KUBECONFIG; inside a pod, use k8s:// "
                    "with the pod's service account",
                )
        except ConfigException as exc:
            raise TargetError(f"kubeconfig: {_one_line(str(exc))}") from exc
        except (OSError, ValueError, TypeError, KeyError, yaml.YAMLError) as exc:  # malformed
            raise TargetError(f"kubeconfig could not be read: {_one_line(str(exc))}") from exc
        configuration.retries = False  # one attempt per call: a dead server fails fast
        self.server = str(configuration.host)
        self._client = client.ApiClient(configuration)
        try:
            self.version = self._get_json("/version")
        except ResourceError as exc:
            self.close()
            raise TargetError(f"{self.server}: {exc}", hint=_hint(exc.status)) from exc

    def server_version(self) -> dict[str, Any] | None:
        return self.version

    def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            client.close()

    # -- reading -----------------------------------------------------------------------------

    def list_objects(self, resource: Resource) -> Listing:
        last: ResourceError | None = None
        for version in resource.versions:
            try:
                items, pages = self._list_all(resource.path(version))
            except ResourceError as exc:
                if exc.status == 404:  # not served in this version; try the next one
                    last = exc
                    continue
                if exc.status == 403:
                    raise ResourceError(
                        f"forbidden: needs list on {resource.rbac_name}",
                        status=403,
                        source=exc.source,
                    ) from exc
                raise
            api_version = f"{resource.group}/{version}" if resource.group else version
            for item in items:
                item.setdefault("apiVersion", api_version)
                item.setdefault("kind", resource.kind)
            source = f"GET {resource.path(version)}?limit={PAGE_SIZE} ({pages} page(s))"
            return Listing(resource, items, source)
        source = last.source if last else f"GET {resource.path(resource.versions[0])}"
        return Listing(resource, [], source, served=False, status=404)

    def kubelet_configs(self, nodes: list[str]) -> list[KubeletConfig]:
        from concurrent.futures import ThreadPoolExecutor

        def one(node: str) -> KubeletConfig:
            path = f"/api/v1/nodes/{quote(node, safe='')}/proxy/configz"
            source = f"GET {path}"
            try:
                body = self._get_json(path)
            except ResourceError as exc:
                reason = "forbidden: needs get on nodes/proxy" if exc.status == 403 else str(exc)
                return KubeletConfig(node, None, None, reason, source)
            config = body.get("kubeletconfig") if isinstance(body, dict) else None
            if not isinstance(config, dict):
                return KubeletConfig(node, None, None, f"{source}: no kubeletconfig", source)
            return KubeletConfig(node, None, config, None, source)

        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(one, nodes))

    def _list_all(self, path: str) -> tuple[list[dict[str, Any]], int]:
        """Every item behind a list path, page by page; restarts once on an expired token."""
        for attempt in range(2):
            items: list[dict[str, Any]] = []
            token = ""
            seen: set[str] = set()
            for page in range(1, MAX_PAGES + 1):
                query = [("limit", str(PAGE_SIZE))] + ([("continue", token)] if token else [])
                try:
                    body = self._get_json(path, query)
                except ResourceError as exc:
                    if exc.status == 410 and token and attempt == 0:
                        break  # the continue token expired: list again from the start
                    raise
                page_items = body.get("items") if isinstance(body, dict) else None
                if not isinstance(page_items, list):
                    raise ResourceError(f"GET {path}: the answer is not a list", source=path)
                items.extend(i for i in page_items if isinstance(i, dict))
                metadata = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
                token = str(metadata.get("continue") or "")
                if not token:
                    return items, page
                if token in seen:
                    raise ResourceError(f"GET {path}: the server repeats a continue token")
                seen.add(token)
            else:
                raise ResourceError(f"GET {path}: more than {MAX_PAGES} pages", source=path)
        raise ResourceError(f"GET {path}: the list kept changing (continue token expired)")

    def _get_json(self, path: str, query: list[tuple[str, str]] | None = None) -> Any:
        """GET `path` and decode its JSON; ResourceError with the HTTP status otherwise."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        if self._client is None:
            raise ResourceError("not connected")
        source = f"GET {path}"
        method, url, headers, _, _ = self._client.param_serialize(
            "GET",
            path,
            query_params=query or [],
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        timeout = (self.spec.connect_timeout, self.spec.command_timeout)
        try:
            response = self._client.call_api(
                method, url, header_params=headers, _request_timeout=timeout
            )
            raw = response.response
            try:
                data = _read_limited(raw, self.spec.command_timeout, source)
            finally:
                raw.release_conn()
        except ApiException as exc:  # TLS failures are reported this way (status 0)
            raise ResourceError(f"{source}: {_tls_reason(str(exc.reason))}", source=source) from exc
        except HTTPError as exc:
            raise ResourceError(f"{source}: {_describe(exc)}", source=source) from exc
        status = int(response.status)
        if status >= 300:
            raise ResourceError(
                f"{source}: HTTP {status} {_api_message(data)}".rstrip(),
                status=status,
                source=source,
            )
        try:
            return json.loads(data)
        except ValueError as exc:
            raise ResourceError(f"{source}: the answer is not JSON", source=source) from exc


def _read_limited(raw: Any, deadline_seconds: float, source: str) -> bytes:
    """The body of a urllib3 response, refusing endless or endlessly slow answers."""
    chunks: list[bytes] = []
    size = 0
    started = time.monotonic()
    while True:
        chunk = raw.read(1024 * 1024)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise ResourceError(f"{source}: the answer exceeds {MAX_RESPONSE_BYTES} bytes")
        if time.monotonic() - started > deadline_seconds:
            raise ResourceError(f"{source}: the answer took longer than {deadline_seconds:g}s")
        chunks.append(chunk)


def _api_message(data: bytes) -> str:
    """The `message` of a Kubernetes Status answer, shortened; empty when there is none."""
    try:
        body = json.loads(data)
    except ValueError:
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    return f"({_first_line(str(message))[:200]})" if message else ""


def _tls_reason(text: str) -> str:
    """The OpenSSL reason inside the client's wrapped TLS error, else its first line."""
    found = re.search(r"\[SSL: [A-Z_]+\][^'\"()]*", text)
    return found.group(0).strip() if found else _first_line(text)[:300]


def _describe(exc: Exception) -> str:
    reason = getattr(exc, "reason", None)
    text = str(reason) if reason is not None else str(exc)
    if "timed out" in text.lower():
        return "timed out"
    if "refused" in text.lower():
        return "connection refused"
    return _first_line(text)[:300]


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), text)


def _hint(status: int | None) -> str:
    hints: dict[int | None, str] = {
        401: "the credentials in the kubeconfig were rejected; refresh them",
        403: "the user may not read /version; bind the auditor ClusterRole "
        "(deploy/kubernetes/auditor-rbac.yaml)",
    }
    return hints.get(status, "check the server address, the CA and that the API server is up")
