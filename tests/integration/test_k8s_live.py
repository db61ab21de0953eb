"""The live `k8s://` path against a recorded-response API server (tests/servers/kube_api.py):
HTTPS with a CA made for the test, a kubeconfig pointing at it, paginated lists, a 403 on one
resource kind and on one node's configz. No real API server can run on these machines; the
tests at the end run against a real cluster whenever AUDITOR_TEST_KUBECONFIG names its
kubeconfig."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers.kube_api import KubeApiServer, kube_api_server, kubeadm_cluster

from auditor import engine
from auditor.collectors import collector_for
from auditor.config import TargetSpec
from auditor.errors import TargetError
from auditor.model import Status, TargetKind
from auditor.profiles import load_profile
from auditor.targets import open_target
from auditor.targets.kubernetes import KubernetesTarget

pytestmark = pytest.mark.integration

NETPOL_FORBIDDEN = "forbidden: needs list on networkpolicies.networking.k8s.io"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[KubeApiServer]:
    with kube_api_server(tmp_path, kubeadm_cluster()) as server:
        yield server


@pytest.fixture(scope="module")
def profile():
    return load_profile()


def audit(profile, spec: TargetSpec):
    record = engine.collect(profile, spec)
    return record, engine.evaluate(profile, record, profile.variables)


def results_of(results, check_id):
    return {r.subject.name: r for r in results if r.check_id == check_id}


def test_audit_through_a_tls_kubeconfig(api, profile):
    record, results = audit(profile, TargetSpec(url="k8s://", kubeconfig=str(api.kubeconfig())))
    assert record.error is None, record.error
    assert record.kind is TargetKind.KUBERNETES
    facts = {f.name: f for f in record.facts}
    assert facts["k8s.networkpolicies"].error == NETPOL_FORBIDDEN
    assert all(f.error is None for n, f in facts.items() if n != "k8s.networkpolicies")

    # a 403 on one kind makes exactly the checks that need it `error`, with the reason
    for check in ("k8s.namespace.network-policy", "k8s.namespace.default-deny-ingress"):
        statuses = {r.status for r in results if r.check_id == check}
        messages = {r.message for r in results if r.check_id == check}
        assert statuses == {Status.ERROR}
        assert messages == {f"could not collect k8s.networkpolicies: {NETPOL_FORBIDDEN}"}
    errored = {r.check_id for r in results if r.status is Status.ERROR}
    assert errored == {
        "k8s.namespace.network-policy",
        "k8s.namespace.default-deny-ingress",
        "k8s.namespace.default-deny-egress",
        "k8s.kubelet.anonymous-auth",  # worker-1's configz is forbidden: one error per check
        "k8s.kubelet.authorization-mode",
        "k8s.kubelet.read-only-port",
        "k8s.kubelet.streaming-timeout",
        "k8s.kubelet.iptables-chains",
        "k8s.kubelet.client-ca",
        "k8s.kubelet.rotate-certificates",
        "k8s.kubelet.protect-kernel-defaults",
    }

    # workloads: each owner once, its pods not again; the bare pod on its own
    privileged = results_of(results, "k8s.pod.no-privileged")
    assert set(privileged) == {
        "kube-system/coredns",
        "kube-system/kube-proxy",
        "shop/web",
        "shop/debug",
        "kube-system/kube-apiserver-cp-1",
        "kube-system/kube-controller-manager-cp-1",
        "kube-system/kube-scheduler-cp-1",
        "kube-system/etcd-cp-1",
    }
    assert privileged["shop/web"].status is Status.FAIL
    assert privileged["shop/web"].subject.kind == "Deployment"
    assert privileged["shop/web"].subject.id == "uid-shop-web"
    assert privileged["kube-system/coredns"].status is Status.PASS
    assert results_of(results, "k8s.pod.no-hardcoded-secrets")["shop/web"].status is Status.FAIL
    # seccomp is judged for the server's own version (GET /version), not the snapshot default
    assert facts["k8s.version"].data["gitVersion"] == "v1.31.4"
    seccomp = results_of(results, "k8s.pod.seccomp")
    assert seccomp["shop/web"].status is Status.FAIL
    assert seccomp["shop/web"].message.endswith("(judged for Kubernetes v1.31.4)")
    assert seccomp["kube-system/kube-apiserver-cp-1"].status is Status.PASS  # the pod field

    # control-plane flags from the static pods, judged with their upstream defaults
    anonymous = results_of(results, "k8s.apiserver.anonymous-auth")
    assert anonymous["kube-apiserver (kube-apiserver-cp-1)"].status is Status.FAIL  # absent = true
    assert (
        results_of(results, "k8s.apiserver.authorization-mode")[
            "kube-apiserver (kube-apiserver-cp-1)"
        ].status
        is Status.PASS
    )
    assert results_of(results, "k8s.etcd.client-tls")["etcd (etcd-cp-1)"].status is Status.PASS

    # kubelet configz: one node readable, one forbidden
    kubelets = results_of(results, "k8s.kubelet.anonymous-auth")
    assert kubelets["cp-1"].status is Status.PASS
    assert kubelets["worker-1"].status is Status.ERROR
    assert kubelets["worker-1"].message == "forbidden: needs get on nodes/proxy"

    # RBAC: a non-system cluster-admin binding and a service account reading every secret
    bindings = results_of(results, "k8s.rbac.cluster-admin-binding")
    assert bindings["deployer-admin"].status is Status.FAIL
    assert bindings["cluster-admin"].status is Status.PASS  # system:masters only
    secrets = results_of(results, "k8s.rbac.sa-secrets-cluster-wide")
    assert secrets["kube-system/coredns"].status is Status.FAIL
    assert secrets["shop/deployer"].status is Status.FAIL  # through cluster-admin


def test_lists_are_paginated_and_only_read(api, profile):
    record, _ = audit(profile, TargetSpec(url="k8s://", kubeconfig=str(api.kubeconfig())))
    assert record.error is None
    assert {r.method for r in api.requests} == {"GET"}
    pods = api.list_requests("/api/v1/pods")
    # 12 pods, 2 per page; the first continue token "expired" (410) and the list restarted
    assert [r.query.get("continue", [""])[0] != "" for r in pods].count(False) == 2
    assert len(pods) == 2 + 6
    assert all(r.query["limit"] == ["500"] for r in pods)
    facts = {f.name: f for f in record.facts}
    assert "GET /api/v1/pods?limit=500 (6 page(s))" in facts["k8s.workloads"].source
    assert all(r.authorization == "Bearer test-token-not-a-secret" for r in api.requests)


def test_versions_not_served_fall_back_and_kinds_not_served_are_empty(api, profile):
    record, _ = audit(profile, TargetSpec(url="k8s://", kubeconfig=str(api.kubeconfig())))
    paths = [r.path for r in api.requests]
    assert "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies" in paths
    assert "/apis/admissionregistration.k8s.io/v1beta1/validatingadmissionpolicies" in paths
    admission = next(f for f in record.facts if f.name == "k8s.admission")
    assert admission.error is None
    assert admission.data["served"]["validatingadmissionpolicies"] is True


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_is_verified_as_the_kubeconfig_says(api, profile):
    without_ca = api.kubeconfig("no-ca", with_ca=False)
    record, results = audit(profile, TargetSpec(url="k8s://", kubeconfig=str(without_ca)))
    assert record.error is not None
    assert "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed" in record.error
    assert {r.status for r in results} == {Status.ERROR}
    insecure = api.kubeconfig("insecure", with_ca=False, insecure=True)
    record, _ = audit(profile, TargetSpec(url="k8s://", kubeconfig=str(insecure)))
    assert record.error is None


def test_named_context_and_kubeconfig_from_the_environment(api, monkeypatch):
    path = api.kubeconfig(contexts=("first", "second"))
    monkeypatch.setenv("KUBECONFIG", str(path))
    with open_target(TargetSpec(url="k8s://second")) as target:
        assert isinstance(target, KubernetesTarget)
        assert target.context == "second"
        assert target.version["gitVersion"] == "v1.31.4"
    with pytest.raises(TargetError, match="third"):
        open_target(TargetSpec(url="k8s://third")).connect()


def test_rejected_credentials_are_a_target_error_with_a_hint(api):
    target = open_target(TargetSpec(url="k8s://", kubeconfig=str(api.kubeconfig(token="wrong"))))
    with pytest.raises(TargetError) as caught:
        target.connect()
    assert "HTTP 401" in str(caught.value)
    assert "credentials" in caught.value.hint


def test_a_malformed_kubeconfig_is_a_one_line_target_error(tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text("clusters: [\n")
    with pytest.raises(TargetError, match="^kubeconfig could not be read: .*line 2") as caught:
        open_target(TargetSpec(url="k8s://", kubeconfig=str(path))).connect()
    assert "\n" not in str(caught.value)


def test_no_kubeconfig_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(TargetError, match="no kubeconfig found"):
        open_target(TargetSpec(url="k8s://")).connect()


def test_a_refused_connection_fails_fast(api, closed_port, profile):
    config = api.kubeconfig("closed", server=f"https://127.0.0.1:{closed_port}")
    started = time.monotonic()
    record, _ = audit(profile, TargetSpec(url="k8s://", kubeconfig=str(config), connect_timeout=2))
    assert record.error is not None and "refused" in record.error
    assert time.monotonic() - started < 5


def test_a_stalling_server_times_out(api, profile):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []

    def accept() -> None:
        try:
            accepted.append(listener.accept()[0])  # take the connection, never answer
        except OSError:
            return

    threading.Thread(target=accept, daemon=True).start()
    config = api.kubeconfig("stall", server=f"https://127.0.0.1:{listener.getsockname()[1]}")
    spec = TargetSpec(url="k8s://", kubeconfig=str(config), connect_timeout=1, command_timeout=1)
    started = time.monotonic()
    try:
        record, _ = audit(profile, spec)
    finally:
        listener.close()
        for conn in accepted:
            conn.close()
    assert record.error is not None and "timed out" in record.error
    assert time.monotonic() - started < 10


def test_a_managed_control_plane_makes_control_plane_checks_error(tmp_path, profile):
    recording = kubeadm_cluster()
    recording.lists["/api/v1/pods"] = [
        p for p in recording.lists["/api/v1/pods"] if "tier" not in p["metadata"].get("labels", {})
    ]
    with kube_api_server(tmp_path, recording) as server:
        _, results = audit(profile, TargetSpec(url="k8s://", kubeconfig=str(server.kubeconfig())))
    for check in ("k8s.apiserver.anonymous-auth", "k8s.etcd.client-tls", "k8s.scheduler.profiling"):
        [result] = [r for r in results if r.check_id == check]
        assert result.status is Status.ERROR
        component = (
            check.split(".")[1]
            .replace("apiserver", "kube-apiserver")
            .replace("scheduler", "kube-scheduler")
        )
        assert f"no {component} pod in kube-system" in result.message


def test_forbidden_workload_kinds_leave_the_others_judged(tmp_path):
    recording = kubeadm_cluster()
    recording.forbidden.add("/apis/apps/v1/daemonsets")
    with kube_api_server(tmp_path, recording) as server:
        spec = TargetSpec(url="k8s://", kubeconfig=str(server.kubeconfig()))
        with open_target(spec) as target:
            facts = collector_for(TargetKind.KUBERNETES).collect(target, ["k8s.workloads"], {})
    items = facts["k8s.workloads"].data
    errors = [i for i in items if "_error" in i]
    assert errors == [
        {
            "kind": "DaemonSet",
            "name": "(all daemonsets)",
            "namespace": None,
            "_error": "forbidden: needs list on daemonsets.apps",
        }
    ]
    # kube-proxy's pods are no longer hidden behind their DaemonSet: they are judged as pods
    assert {(i["kind"], i["name"]) for i in items if i.get("owner") == "DaemonSet/kube-proxy"} == {
        ("Pod", "kube-proxy-0"),
        ("Pod", "kube-proxy-1"),
    }


def test_cli_audits_a_cluster_with_kubeconfig_flag(api, auditor_cli, tmp_path):
    out = tmp_path / "results.json"
    result = auditor_cli(
        "run", "-q", "-t", "k8s://", "--kubeconfig", str(api.kubeconfig()), "-r", f"json:{out}"
    )
    assert result.code in (0, 1), result.err
    document = json.loads(out.read_text())
    assert [t["error"] for t in document["targets"]] == [None]
    web = [
        r
        for r in document["results"]
        if r["check_id"] == "k8s.pod.no-privileged" and r["subject"]["name"] == "shop/web"
    ]
    assert [(r["status"], r["subject"]["kind"]) for r in web] == [("fail", "Deployment")]


# -- a real cluster --------------------------------------------------------------------------

REAL = os.environ.get("AUDITOR_TEST_KUBECONFIG")
real_cluster = pytest.mark.skipif(
    not REAL, reason="set AUDITOR_TEST_KUBECONFIG to a real cluster's kubeconfig to run these"
)


@real_cluster
def test_real_cluster_is_audited(profile):
    record, results = audit(profile, TargetSpec(url="k8s://", kubeconfig=REAL))
    assert record.error is None, record.error
    facts = {f.name: f for f in record.facts}
    for name in ("k8s.namespaces", "k8s.nodes"):
        fact = facts[name]
        assert fact.error is None and fact.data, f"{name}: {fact.error}"
    assert {r.status for r in results} <= set(Status)
    internal = [
        r for r in results if "internal error" in r.message or "could not normalise" in r.message
    ]
    assert not internal, internal[:5]


@real_cluster
def test_real_cluster_auditor_role_is_enough(profile):
    """With the shipped ClusterRole bound, no kind the collector reads is forbidden."""
    record, _ = audit(profile, TargetSpec(url="k8s://", kubeconfig=REAL))
    forbidden = [f"{f.name}: {f.error}" for f in record.facts if f.error and "forbidden" in f.error]
    assert not forbidden, forbidden


@pytest.mark.parametrize(
    "text, expected",
    [
        ("clusters: " + "[" * 100_000 + "]" * 100_000 + "\n", "nested deeper than 200 levels"),
        ("clusters: []\nclusters: []\n", "duplicate key 'clusters' (first on line 1) at line 2"),
    ],
)
def test_a_hostile_kubeconfig_is_refused_by_the_bounded_loader(tmp_path, text, expected):
    """The client's own YAML loader has no depth or alias bound: ours reads it first."""
    path = tmp_path / "kubeconfig"
    path.write_text(text)
    with pytest.raises(TargetError, match="^kubeconfig could not be read: ") as caught:
        open_target(TargetSpec(url="k8s://", kubeconfig=str(path))).connect()
    assert expected in str(caught.value)
