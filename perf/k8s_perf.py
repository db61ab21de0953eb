"""Kubernetes audit performance: a generated cluster snapshot audited with the full profile.

The snapshot is what `kubectl get -A -o json` gives, one file per namespace: Deployments with
their ReplicaSets, StatefulSets, DaemonSets, CronJobs with a Job, and their pods (owned, with
status, as the API lists them), Services, ServiceAccounts, RoleBindings, NetworkPolicies,
nodes and a kubeadm control plane. The issue's size is 10,000 pods and 2,000 workloads in 200
namespaces; the growth runs keep those ratios (5 pods per workload, 50 pods per namespace).
In the `bare` variant no pod has an owner, so each is judged on its own (12,000 workload
subjects at the issue's size) - the worst case for evaluation.

Each measurement runs in a fresh process and reports its wall time, CPU time (user + system;
steadier than wall time on a shared machine) and peak RSS, taken from wait4: for the engine
alone (collect + evaluate, what `auditor run` does before reporting; the child also prints the
CPU time of each phase) and for the whole CLI (`auditor run -r json:FILE --no-store`), beside
a floor measured just before it: a fresh Python that reads and parses every file of the
snapshot with orjson (the ratio to it holds better than seconds on a busy machine). Prints the
load average and a Markdown table for perf/RESULTS.md.

    python perf/k8s_perf.py                 # 1,000 / 10,000 / 50,000 pods
    python perf/k8s_perf.py --pods 10000    # one size
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PODS_PER_WORKLOAD = 5
PODS_PER_NAMESPACE = 50
KINDS = ("Deployment",) * 6 + ("StatefulSet",) * 2 + ("DaemonSet", "CronJob")


def container(name: str, index: int) -> dict[str, Any]:
    return {
        "name": name,
        "image": f"registry.example.com/team-{index % 7}/{name}:1.{index % 30}.0",
        "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
        "env": [
            {"name": "LOG_LEVEL", "value": "info"},
            {"name": "DB_HOST", "value": f"db-{index % 11}.data.svc"},
            {
                "name": "DB_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}},
            },
        ],
        "resources": {
            "limits": {"cpu": "500m", "memory": "256Mi"},
            "requests": {"cpu": "100m", "memory": "128Mi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": index % 3 != 0,
            "readOnlyRootFilesystem": index % 2 == 0,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 10},
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            {
                "name": "kube-api-access",
                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                "readOnly": True,
            },
        ],
        "terminationMessagePath": "/dev/termination-log",
        "imagePullPolicy": "IfNotPresent",
    }


def pod_spec(name: str, index: int) -> dict[str, Any]:
    return {
        "serviceAccountName": name if index % 4 else "default",
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}} if index % 5 else {},
        "containers": [container(name, index)]
        + ([container("sidecar", index + 1)] if index % 3 == 0 else []),
        "volumes": [
            {"name": "tmp", "emptyDir": {}},
            {
                "name": "kube-api-access",
                "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]},
            },
        ],
        "dnsPolicy": "ClusterFirst",
        "restartPolicy": "Always",
        "schedulerName": "default-scheduler",
        "terminationGracePeriodSeconds": 30,
    }


def meta(name: str, namespace: str | None, **extra: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "uid": f"{namespace}-{name}",
        "resourceVersion": "123456",
        "creationTimestamp": "2026-10-01T12:00:00Z",
        "labels": {
            "app.kubernetes.io/name": name.split("-")[0],
            "app.kubernetes.io/part-of": "shop",
        },
        **extra,
    }
    if namespace:
        metadata["namespace"] = namespace
    return metadata


def owner(kind: str, name: str, namespace: str) -> dict[str, Any]:
    return {
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": kind,
                "name": name,
                "uid": f"{namespace}-{name}",
                "controller": True,
            }
        ]
    }


def pod(
    name: str, namespace: str, spec: dict[str, Any], owned_by: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta(name, namespace, **(owned_by or {})),
        "spec": {**spec, "nodeName": f"node-{hash(name) % 50}"},
        "status": {
            "phase": "Running",
            "podIP": "10.244.1.17",
            "conditions": [
                {"type": t, "status": "True"}
                for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
            ],
            "containerStatuses": [
                {
                    "name": c["name"],
                    "ready": True,
                    "restartCount": 0,
                    "image": c["image"],
                    "imageID": "registry.example.com@sha256:" + "0" * 64,
                    "started": True,
                }
                for c in spec["containers"]
            ],
        },
    }


def namespace_objects(
    ns: str, ns_index: int, workloads: int, pods: int, standalone: bool
) -> list[dict[str, Any]]:
    """Every object of one namespace, as a kubectl List would hold them."""
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": meta(
                ns,
                None,
                labels={"pod-security.kubernetes.io/enforce": "baseline"} if ns_index % 2 else {},
            ),
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": meta("default-deny", ns),
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta("reader", ns),
            "rules": [
                {"apiGroups": [""], "resources": ["pods", "configmaps"], "verbs": ["get", "list"]}
            ],
        },
    ]
    remaining = pods
    for w in range(workloads):
        kind = KINDS[w % len(KINDS)]
        name = f"{kind.lower()}-{w}"
        index = ns_index * 1000 + w
        spec = pod_spec(name, index)
        count = min(PODS_PER_WORKLOAD, remaining) if w < workloads - 1 else remaining
        remaining -= count
        template = {"metadata": {"labels": {"app": name}}, "spec": spec}
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": meta(name, ns),
                "automountServiceAccountToken": w % 2 == 0,
            }
        )
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": meta(name, ns),
                "spec": {
                    "type": "NodePort" if w % 9 == 0 else "ClusterIP",
                    "ports": [{"port": 80, "targetPort": 8080}],
                    "selector": {"app": name},
                },
            }
        )
        objects.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": meta(name, ns),
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "reader",
                },
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
            }
        )
        if kind == "CronJob":
            objects.append(
                {
                    "apiVersion": "batch/v1",
                    "kind": "CronJob",
                    "metadata": meta(name, ns),
                    "spec": {
                        "schedule": "0 * * * *",
                        "jobTemplate": {"spec": {"template": template}},
                    },
                }
            )
            job = f"{name}-29000000"
            objects.append(
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "metadata": meta(job, ns, **owner("CronJob", name, ns)),
                    "spec": {"template": template},
                }
            )
            parent_kind, parent = "Job", job
        elif kind == "Deployment":
            objects.append(
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": meta(name, ns),
                    "spec": {"replicas": count, "template": template},
                }
            )
            replica_set = f"{name}-7d9c8b"
            objects.append(
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "metadata": meta(replica_set, ns, **owner("Deployment", name, ns)),
                    "spec": {"replicas": count, "template": template},
                }
            )
            parent_kind, parent = "ReplicaSet", replica_set
        else:
            objects.append(
                {
                    "apiVersion": "apps/v1",
                    "kind": kind,
                    "metadata": meta(name, ns),
                    "spec": {"template": template},
                }
            )
            parent_kind, parent = kind, name
        for p in range(count):
            owned = None if standalone else owner(parent_kind, parent, ns)
            objects.append(pod(f"{parent}-{p}", ns, spec, owned))
    return objects


def cluster_objects(nodes: int) -> list[dict[str, Any]]:
    labels = {"kubernetes.io/bootstrapping": "rbac-defaults"}
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": meta("cluster-admin", None, labels=labels),
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": meta("cluster-admin", None, labels=labels),
            "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "Group", "name": "system:masters"}],
        },
    ]
    for n in range(nodes):
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": meta(f"node-{n}", None),
                "status": {
                    "conditions": [{"type": "Ready", "status": "True"}],
                    "nodeInfo": {
                        "kubeletVersion": "v1.36.1",
                        "containerRuntimeVersion": "containerd://2.1.4",
                    },
                },
            }
        )
    flags = [
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",
        "--anonymous-auth=false",
    ]
    for component in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"):
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": meta(
                    f"{component}-cp-1",
                    "kube-system",
                    labels={"component": component, "tier": "control-plane"},
                ),
                "spec": {
                    "hostNetwork": True,
                    "containers": [
                        {
                            "name": component,
                            "image": f"registry.k8s.io/{component}:v1.36.1",
                            "command": [component, *flags],
                        }
                    ],
                },
            }
        )
    return objects


def generate(directory: Path, pods: int, standalone: bool) -> dict[str, int]:
    """Write the snapshot; returns its counts."""
    workloads = pods // PODS_PER_WORKLOAD
    namespaces = max(1, pods // PODS_PER_NAMESPACE)
    per_namespace = workloads // namespaces
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(namespaces):
        objects = namespace_objects(
            f"team-{i:04d}", i, per_namespace, pods // namespaces, standalone
        )
        (directory / f"team-{i:04d}.json").write_text(
            json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}, indent=2)
        )
    (directory / "cluster.json").write_text(
        json.dumps({"apiVersion": "v1", "kind": "List", "items": cluster_objects(50)}, indent=2)
    )
    size = sum(p.stat().st_size for p in directory.iterdir())
    return {
        "pods": pods,
        "workloads": per_namespace * namespaces,
        "namespaces": namespaces,
        "bytes": size,
    }


def measure_engine(directory: Path) -> None:
    """Child process: collect + evaluate once; print CPU seconds per phase and counts (JSON)."""
    sys.path.insert(0, str(ROOT))
    from auditor import cyclegc, engine
    from auditor.config import TargetSpec
    from auditor.profiles import load_profile

    profile = load_profile()
    with cyclegc.run_policy(), engine.judging_for(None) as judging:  # as a run does
        started = time.process_time()
        record = engine.collect(profile, TargetSpec(url=f"k8s-snapshot://{directory}"))
        collected = time.process_time()
        results = engine.evaluate(profile, record, profile.variables, judging=judging)
        done = time.process_time()
    assert record.error is None, record.error
    workloads = {
        (r.subject.kind, r.subject.name) for r in results if r.check_id == "k8s.pod.no-privileged"
    }
    subjects = {(r.check_id.split(".")[1], r.subject.kind, r.subject.name) for r in results}
    stats = {
        "collect": collected - started,
        "evaluate": done - collected,
        "results": len(results),
        "workload_subjects": len(workloads),
        "subjects": len(subjects),
    }
    print(json.dumps(stats))  # noqa: T201


@dataclass
class Measured:
    wall: float  # seconds
    cpu: float  # user + system seconds of the child
    rss: float  # peak resident set, MB
    stdout: str


# The floor: a fresh Python reading and parsing every file of the snapshot, as fast as it goes.
FLOOR = (
    "import orjson, pathlib, sys\n"
    "for path in sorted(pathlib.Path(sys.argv[1]).rglob('*.json')):\n"
    "    orjson.loads(path.read_bytes())\n"
)


def child(args: list[str]) -> Measured:
    """Run one fresh Python process and measure it (its own rusage, through wait4)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        # The growth runs (50,000 pods, bare pods) pass the snapshot's object cap on purpose.
        env = {**os.environ, "AUDITOR_SNAPSHOT_MAX_OBJECTS": "1000000"}
        process = subprocess.Popen(
            [sys.executable, *args], stdout=out, stderr=err, cwd=ROOT, env=env
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if process.returncode not in (0, 1):
        raise SystemExit(f"{args} failed ({process.returncode}): {stderr[-2000:]}")
    return Measured(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, stdout)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--pods", type=int, action="append", help="pod counts (default 1000 10000 50000)"
    )
    parser.add_argument(
        "--bare-up-to",
        type=int,
        default=10000,
        help="largest size also measured with bare pods (default 10000: 50,000 bare pods make "
        "2.3 million results and the JSON report alone needs over 10 GB)",
    )
    parser.add_argument("--measure-engine", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_engine:
        measure_engine(args.measure_engine)
        return
    rows = []
    load_before = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    workdir = Path(tempfile.mkdtemp(prefix="auditor-k8s-perf-"))
    try:
        for pods in sorted(args.pods or [1000, 10000, 50000]):
            for standalone in (False, True) if pods <= args.bare_up_to else (False,):
                snapshot = workdir / f"{pods}-{'bare' if standalone else 'owned'}"
                counts = generate(snapshot, pods, standalone)
                floor = child(["-c", FLOOR, str(snapshot)])
                engine_run = child([__file__, "--measure-engine", str(snapshot)])
                report = workdir / "results.json"
                cli_run = child(
                    [
                        "-m",
                        "auditor",
                        "run",
                        "-q",
                        "--no-store",
                        "-t",
                        f"k8s-snapshot://{snapshot}",
                        "-r",
                        f"json:{report}",
                    ]
                )
                rows.append(
                    (counts, standalone, json.loads(engine_run.stdout), engine_run, cli_run, floor)
                )
                shutil.rmtree(snapshot)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    header = (
        "| pods | workloads | namespaces | pods are | snapshot | workload subjects | "
        "all subjects | results | collect (CPU) | evaluate (CPU) | "
        "engine: wall / CPU / peak RSS | `auditor run -r json`: wall / CPU / peak RSS | "
        "floor: wall / CPU | CLI / floor, wall |"
    )
    load_after = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"load average before {load_before}, after {load_after}\n")  # noqa: T201
    print(header)  # noqa: T201
    print("|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")  # noqa: T201
    for counts, standalone, stats, engine_run, cli_run, floor in rows:
        print(  # noqa: T201
            f"| {counts['pods']:,} | {counts['workloads']:,} | {counts['namespaces']:,} | "
            f"{'bare' if standalone else 'owned'} | {counts['bytes'] / 1e6:.0f} MB | "
            f"{stats['workload_subjects']:,} | {stats['subjects']:,} | {stats['results']:,} | "
            f"{stats['collect']:.1f} s | {stats['evaluate']:.1f} s | "
            f"{engine_run.wall:.1f} s / {engine_run.cpu:.1f} s / {engine_run.rss:.0f} MB | "
            f"{cli_run.wall:.1f} s / {cli_run.cpu:.1f} s / {cli_run.rss:.0f} MB | "
            f"{floor.wall:.1f} s / {floor.cpu:.1f} s | {cli_run.wall / floor.wall:.1f} |"
        )


if __name__ == "__main__":
    main()
