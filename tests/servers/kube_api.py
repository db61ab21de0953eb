"""A recorded-response Kubernetes API server for the live-path tests.

No API server can be installed on these machines, so `k8s://` is tested against this one: HTTPS
on 127.0.0.1 with a CA and server certificate made for the test, bearer-token authentication
(401 otherwise), and GET answers replayed from a recording of list responses. Lists are served
the way the API server serves them: at most `limit` items per page (and fewer when the
recording's page size is smaller, as the API may do), `metadata.continue` tokens, 410 Gone for
an expired token, 403 for the resource kinds the recording forbids and 404 for kinds it does not
serve. Every request is logged, so tests can check that only reads were made.

The recording (`kubeadm_cluster`) is written in the API's list format after a kubeadm 1.31
cluster - static control-plane pods in kube-system, CoreDNS, kube-proxy, an application
namespace - and is not a capture of a real server.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from servers.certs import server_certificates

HOST = "127.0.0.1"
TOKEN = "test-token-not-a-secret"


@dataclass
class Recording:
    """What the server answers: list items per path, kubelet configs per node, and faults."""

    version: dict[str, Any]
    lists: dict[str, list[dict[str, Any]]]
    configz: dict[str, dict[str, Any]] = field(default_factory=dict)
    forbidden: set[str] = field(default_factory=set)  # list paths answered 403
    forbidden_configz: set[str] = field(default_factory=set)  # nodes answered 403
    expire_once: set[str] = field(default_factory=set)  # first continue of these paths: 410
    page_size: int = 2


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    authorization: str | None


@dataclass
class KubeApiServer:
    """A running server: its URL, the CA that signed its certificate, and its request log."""

    url: str
    ca_pem: bytes
    directory: Path
    requests: list[Request]
    recording: Recording

    def kubeconfig(
        self,
        name: str = "kubeconfig",
        *,
        token: str = TOKEN,
        with_ca: bool = True,
        insecure: bool = False,
        contexts: tuple[str, ...] = ("test",),
        server: str | None = None,
    ) -> Path:
        """Write a kubeconfig for this server; the first context is the current one."""
        cluster: dict[str, Any] = {"server": server or self.url}
        if with_ca:
            cluster["certificate-authority-data"] = base64.b64encode(self.ca_pem).decode()
        if insecure:
            cluster["insecure-skip-tls-verify"] = True
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "test-cluster", "cluster": cluster}],
            "users": [{"name": "auditor", "user": {"token": token}}],
            "contexts": [
                {"name": c, "context": {"cluster": "test-cluster", "user": "auditor"}}
                for c in contexts
            ],
            "current-context": contexts[0],
        }
        path = self.directory / name
        path.write_text(json.dumps(config))
        return path

    def list_requests(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]


@contextmanager
def kube_api_server(directory: Path, recording: Recording) -> Iterator[KubeApiServer]:
    """Serve `recording` over HTTPS on 127.0.0.1 until the block ends."""
    ca_pem, cert_pem, key_pem = server_certificates("kube-apiserver", HOST)
    (directory / "server.crt").write_bytes(cert_pem + ca_pem)
    (directory / "server.key").write_bytes(key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "server.crt", directory / "server.key")
    requests: list[Request] = []
    handler = _handler(recording, requests)
    httpd = ThreadingHTTPServer((HOST, 0), handler)
    httpd.daemon_threads = True
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        port = httpd.server_address[1]
        yield KubeApiServer(f"https://{HOST}:{port}", ca_pem, directory, requests, recording)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def _handler(recording: Recording, log: list[Request]) -> type[BaseHTTPRequestHandler]:
    expired: set[str] = set()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            path = unquote(parts.path)
            query = parse_qs(parts.query)
            log.append(Request("GET", path, query, self.headers.get("Authorization")))
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self._status(401, "Unauthorized", "Unauthorized")
                return
            if path == "/version":
                self._json(200, recording.version)
                return
            if path.startswith("/api/v1/nodes/") and path.endswith("/proxy/configz"):
                node = path[len("/api/v1/nodes/") : -len("/proxy/configz")]
                if node in recording.forbidden_configz:
                    self._status(
                        403,
                        "Forbidden",
                        f'nodes "{node}" is forbidden: cannot get resource "nodes/proxy"',
                    )
                elif node in recording.configz:
                    self._json(200, {"kubeletconfig": recording.configz[node]})
                else:
                    self._status(404, "NotFound", f'nodes "{node}" not found')
                return
            if path in recording.forbidden:
                self._status(403, "Forbidden", f"cannot list resource at {path}")
                return
            if path not in recording.lists:
                self._status(404, "NotFound", "the server could not find the requested resource")
                return
            self._page(path, query)

        def _page(self, path: str, query: dict[str, list[str]]) -> None:
            items = recording.lists[path]
            limit = int(query.get("limit", ["0"])[0]) or len(items) or 1
            size = min(limit, recording.page_size)
            token = query.get("continue", [""])[0]
            start = 0
            if token:
                if path in recording.expire_once and path not in expired:
                    expired.add(path)
                    self._status(410, "Expired", "The provided continue parameter is too old")
                    return
                start = int(base64.b64decode(token).decode().split(":")[1])
            page = items[start : start + size]
            following = start + size
            metadata: dict[str, Any] = {"resourceVersion": "4242"}
            if following < len(items):
                metadata["continue"] = base64.b64encode(f"{path}:{following}".encode()).decode()
                metadata["remainingItemCount"] = len(items) - following
            self._json(
                200, {"kind": "List", "apiVersion": "v1", "metadata": metadata, "items": page}
            )

        def do_POST(self) -> None:  # anything but GET is logged and refused
            self._refuse("POST")

        def do_PUT(self) -> None:
            self._refuse("PUT")

        def do_PATCH(self) -> None:
            self._refuse("PATCH")

        def do_DELETE(self) -> None:
            self._refuse("DELETE")

        def _refuse(self, method: str) -> None:
            log.append(
                Request(method, urlsplit(self.path).path, {}, self.headers.get("Authorization"))
            )
            self._status(405, "MethodNotAllowed", "read-only recording")

        def _status(self, code: int, reason: str, message: str) -> None:
            body = {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "message": message,
                "reason": reason,
                "code": code,
            }
            self._json(code, body)

        def _json(self, code: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


# -- the recording -----------------------------------------------------------------------------

_BOOTSTRAP = {"kubernetes.io/bootstrapping": "rbac-defaults"}


def _meta(name: str, namespace: str | None = None, **extra: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "uid": f"uid-{namespace or ''}-{name}", **extra}
    if namespace:
        metadata["namespace"] = namespace
    return metadata


def _static_pod(component: str, node: str, *flags: str) -> dict[str, Any]:
    return {
        "metadata": _meta(
            f"{component}-{node}",
            "kube-system",
            labels={"component": component, "tier": "control-plane"},
            annotations={
                "kubernetes.io/config.mirror": "0f1e",
                "kubernetes.io/config.source": "file",
            },
            ownerReferences=[
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "name": node,
                    "uid": f"node-{node}",
                    "controller": True,
                }
            ],
        ),
        "spec": {
            "nodeName": node,
            "hostNetwork": True,
            "priorityClassName": "system-node-critical",
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": component,
                    "image": f"registry.k8s.io/{component}:v1.31.4",
                    "command": [component, *flags],
                    "resources": {"requests": {"cpu": "250m"}},
                    "volumeMounts": [
                        {"name": "k8s-certs", "mountPath": "/etc/kubernetes/pki", "readOnly": True}
                    ],
                }
            ],
            "volumes": [
                {
                    "name": "k8s-certs",
                    "hostPath": {"path": "/etc/kubernetes/pki", "type": "DirectoryOrCreate"},
                }
            ],
        },
        "status": {"phase": "Running"},
    }


def _owned_pods(
    count: int, owner_kind: str, owner: str, namespace: str, spec: dict[str, Any]
) -> list[dict[str, Any]]:
    return [
        {
            "metadata": _meta(
                f"{owner}-{i}",
                namespace,
                ownerReferences=[
                    {
                        "apiVersion": "apps/v1",
                        "kind": owner_kind,
                        "name": owner,
                        "uid": f"uid-{namespace}-{owner}",
                        "controller": True,
                    }
                ],
            ),
            "spec": spec,
            "status": {"phase": "Running"},
        }
        for i in range(count)
    ]


def kubeadm_cluster() -> Recording:
    """A small kubeadm-style cluster: two nodes, the control plane as static pods, CoreDNS,
    kube-proxy, and a `shop` namespace with a privileged web Deployment."""
    apiserver = _static_pod(
        "kube-apiserver",
        "cp-1",
        "--advertise-address=10.0.0.10",
        "--allow-privileged=true",
        "--authorization-mode=Node,RBAC",
        "--client-ca-file=/etc/kubernetes/pki/ca.crt",
        "--enable-admission-plugins=NodeRestriction",
        "--enable-bootstrap-token-auth=true",
        "--etcd-cafile=/etc/kubernetes/pki/etcd/ca.crt",
        "--etcd-certfile=/etc/kubernetes/pki/apiserver-etcd-client.crt",
        "--etcd-keyfile=/etc/kubernetes/pki/apiserver-etcd-client.key",
        "--etcd-servers=https://127.0.0.1:2379",
        "--kubelet-client-certificate=/etc/kubernetes/pki/apiserver-kubelet-client.crt",
        "--kubelet-client-key=/etc/kubernetes/pki/apiserver-kubelet-client.key",
        "--secure-port=6443",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        "--service-account-key-file=/etc/kubernetes/pki/sa.pub",
        "--service-account-signing-key-file=/etc/kubernetes/pki/sa.key",
        "--service-cluster-ip-range=10.96.0.0/12",
        "--tls-cert-file=/etc/kubernetes/pki/apiserver.crt",
        "--tls-private-key-file=/etc/kubernetes/pki/apiserver.key",
    )
    controller_manager = _static_pod(
        "kube-controller-manager",
        "cp-1",
        "--authentication-kubeconfig=/etc/kubernetes/controller-manager.conf",
        "--bind-address=127.0.0.1",
        "--cluster-signing-cert-file=/etc/kubernetes/pki/ca.crt",
        "--root-ca-file=/etc/kubernetes/pki/ca.crt",
        "--service-account-private-key-file=/etc/kubernetes/pki/sa.key",
        "--use-service-account-credentials=true",
    )
    scheduler = _static_pod(
        "kube-scheduler",
        "cp-1",
        "--bind-address=127.0.0.1",
        "--kubeconfig=/etc/kubernetes/scheduler.conf",
    )
    etcd = _static_pod(
        "etcd",
        "cp-1",
        "--cert-file=/etc/kubernetes/pki/etcd/server.crt",
        "--client-cert-auth=true",
        "--key-file=/etc/kubernetes/pki/etcd/server.key",
        "--peer-cert-file=/etc/kubernetes/pki/etcd/peer.crt",
        "--peer-client-cert-auth=true",
        "--peer-key-file=/etc/kubernetes/pki/etcd/peer.key",
        "--trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt",
    )
    coredns_spec = {
        "serviceAccountName": "coredns",
        "containers": [
            {
                "name": "coredns",
                "image": "registry.k8s.io/coredns/coredns:v1.11.3",
                "args": ["-conf", "/etc/coredns/Corefile"],
                "resources": {
                    "limits": {"memory": "170Mi"},
                    "requests": {"cpu": "100m", "memory": "70Mi"},
                },
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
                    "readOnlyRootFilesystem": True,
                },
            }
        ],
    }
    proxy_spec = {
        "hostNetwork": True,
        "serviceAccountName": "kube-proxy",
        "containers": [
            {
                "name": "kube-proxy",
                "image": "registry.k8s.io/kube-proxy:v1.31.4",
                "command": [
                    "/usr/local/bin/kube-proxy",
                    "--config=/var/lib/kube-proxy/config.conf",
                ],
                "securityContext": {"privileged": True},
            }
        ],
        "volumes": [{"name": "lib-modules", "hostPath": {"path": "/lib/modules"}}],
    }
    web_spec = {
        "containers": [
            {
                "name": "web",
                "image": "nginx:latest",
                "ports": [{"containerPort": 80}],
                "securityContext": {"privileged": True},
                "env": [{"name": "DB_PASSWORD", "value": "hunter2-but-longer"}],
            }
        ]
    }
    ns = [
        {"metadata": _meta(n, labels={"kubernetes.io/metadata.name": n, **labels})}
        for n, labels in (
            ("default", {}),
            ("kube-system", {}),
            ("kube-public", {}),
            ("kube-node-lease", {}),
            ("shop", {"pod-security.kubernetes.io/enforce": "baseline"}),
        )
    ]
    nodes = [
        {
            "metadata": _meta(name, labels={"kubernetes.io/hostname": name}),
            "status": {
                "conditions": [{"type": "Ready", "status": "True"}],
                "nodeInfo": {
                    "kubeletVersion": "v1.31.4",
                    "containerRuntimeVersion": "containerd://1.7.24",
                    "kernelVersion": "6.1.0-28-amd64",
                    "osImage": "Debian GNU/Linux 12 (bookworm)",
                },
            },
        }
        for name in ("cp-1", "worker-1")
    ]
    kubelet = {
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": "/etc/kubernetes/pki/ca.crt"},
        },
        "authorization": {"mode": "Webhook"},
        "readOnlyPort": 0,
        "rotateCertificates": True,
        "streamingConnectionIdleTimeout": "4h0m0s",
        "makeIPTablesUtilChains": True,
        "protectKernelDefaults": False,
    }
    pods = [apiserver, controller_manager, scheduler, etcd]
    pods += _owned_pods(2, "ReplicaSet", "coredns-7c65d6cfc9", "kube-system", coredns_spec)
    pods += _owned_pods(2, "DaemonSet", "kube-proxy", "kube-system", proxy_spec)
    pods += _owned_pods(3, "ReplicaSet", "web-5d8f6c", "shop", web_spec)
    pods.append(
        {
            "metadata": _meta("debug", "shop"),
            "spec": {
                "containers": [
                    {"name": "sh", "image": "busybox:1.36", "securityContext": {"runAsUser": 0}}
                ]
            },
        }
    )
    owner = {
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": "coredns",
                "uid": "uid-kube-system-coredns",
                "controller": True,
            }
        ]
    }
    web_owner = {
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": "web",
                "uid": "uid-shop-web",
                "controller": True,
            }
        ]
    }
    cluster_admin = {
        "metadata": _meta("cluster-admin", labels=_BOOTSTRAP),
        "rules": [
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
            {"nonResourceURLs": ["*"], "verbs": ["*"]},
        ],
    }
    return Recording(
        version={"major": "1", "minor": "31", "gitVersion": "v1.31.4", "platform": "linux/amd64"},
        lists={
            "/api/v1/namespaces": ns,
            "/api/v1/pods": pods,
            "/api/v1/podtemplates": [],
            "/api/v1/replicationcontrollers": [],
            "/apis/apps/v1/deployments": [
                {
                    "metadata": _meta("coredns", "kube-system"),
                    "spec": {"template": {"spec": coredns_spec}},
                },
                {"metadata": _meta("web", "shop"), "spec": {"template": {"spec": web_spec}}},
            ],
            "/apis/apps/v1/replicasets": [
                {
                    "metadata": _meta("coredns-7c65d6cfc9", "kube-system", **owner),
                    "spec": {"template": {"spec": coredns_spec}},
                },
                {
                    "metadata": _meta("web-5d8f6c", "shop", **web_owner),
                    "spec": {"template": {"spec": web_spec}},
                },
            ],
            "/apis/apps/v1/daemonsets": [
                {
                    "metadata": _meta("kube-proxy", "kube-system"),
                    "spec": {"template": {"spec": proxy_spec}},
                }
            ],
            "/apis/apps/v1/statefulsets": [],
            "/apis/batch/v1/jobs": [],
            "/apis/batch/v1/cronjobs": [],
            "/api/v1/services": [
                {
                    "metadata": _meta("kubernetes", "default"),
                    "spec": {"type": "ClusterIP", "ports": [{"port": 443}]},
                },
                {
                    "metadata": _meta("web", "shop"),
                    "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]},
                },
            ],
            "/apis/networking.k8s.io/v1/ingresses": [],
            "/apis/networking.k8s.io/v1/networkpolicies": [],
            "/api/v1/serviceaccounts": [
                {"metadata": _meta("default", "shop")},
                {"metadata": _meta("coredns", "kube-system")},
                {"metadata": _meta("kube-proxy", "kube-system")},
                {"metadata": _meta("deployer", "shop")},
            ],
            "/apis/rbac.authorization.k8s.io/v1/roles": [],
            "/apis/rbac.authorization.k8s.io/v1/clusterroles": [
                cluster_admin,
                {
                    "metadata": _meta("secret-reader"),
                    "rules": [
                        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}
                    ],
                },
            ],
            "/apis/rbac.authorization.k8s.io/v1/rolebindings": [],
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings": [
                {
                    "metadata": _meta("cluster-admin", labels=_BOOTSTRAP),
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": "cluster-admin",
                    },
                    "subjects": [
                        {
                            "apiGroup": "rbac.authorization.k8s.io",
                            "kind": "Group",
                            "name": "system:masters",
                        }
                    ],
                },
                {
                    "metadata": _meta("deployer-admin"),
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": "cluster-admin",
                    },
                    "subjects": [
                        {"kind": "ServiceAccount", "name": "deployer", "namespace": "shop"}
                    ],
                },
                {
                    "metadata": _meta("read-all-secrets"),
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": "secret-reader",
                    },
                    "subjects": [
                        {"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}
                    ],
                },
            ],
            "/api/v1/nodes": nodes,
            # ValidatingAdmissionPolicies only in v1beta1 here (a 1.28-1.29 style server)
            "/apis/admissionregistration.k8s.io/v1beta1/validatingadmissionpolicies": [],
            "/apis/admissionregistration.k8s.io/v1beta1/validatingadmissionpolicybindings": [],
            "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations": [],
            "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations": [],
        },
        configz={"cp-1": kubelet},
        forbidden={"/apis/networking.k8s.io/v1/networkpolicies"},
        forbidden_configz={"worker-1"},
        expire_once={"/api/v1/pods"},
    )
