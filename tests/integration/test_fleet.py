"""Distributed runs against the real thing: Debian's redis-server as the Celery broker, real
`auditor worker` processes, the real test sshd as the target. The coordinator sends no
credentials: each worker brings its own key and known_hosts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import docker
import pytest
import redis
import sqlalchemy
import yaml
from servers.dockerd import busybox_image
from servers.redis import RedisServer, redis_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> Iterator[RedisServer]:
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


def _env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[2])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}


@contextmanager
def worker(broker: RedisServer, sshd, name: str, *args: str, cwd: Path | None = None):
    """An `auditor worker` process with the test sshd's key and known_hosts as its own."""
    log = (cwd or Path("/tmp")) / f"worker-{name}-{os.getpid()}.log"
    argv = [sys.executable, "-m", "auditor", "worker", "--broker", broker.url, "--name", name,
            "--identity", str(sshd.client_key_path), "--known-hosts", str(sshd.known_hosts_path),
            "--ssh-config", "/dev/null", *args]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=_env(), cwd=cwd)
    try:
        _wait_for_worker(broker, name, proc, log)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_for_worker(broker: RedisServer, name: str, proc: subprocess.Popen, log: Path) -> None:
    """Until the worker consumes from its queues (its log says `ready`)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"worker {name} exited: {log.read_text(errors='replace')}")
        if b": ready, serving" in log.read_bytes():
            return
        time.sleep(0.1)
    raise AssertionError(f"worker {name} not ready: {log.read_text(errors='replace')}")


def coordinator(broker: RedisServer, tmp_path: Path, *args: str, timeout: float = 300):
    """`auditor run --broker` with no credentials of its own; returns (exit code, document)."""
    report = tmp_path / f"results-{time.monotonic_ns()}.json"
    argv = [sys.executable, "-m", "auditor", "run", "--broker", broker.url, "--no-store",
            "-q", "-r", f"json:{report}", *args]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=_env(),
                          cwd=tmp_path, check=False)  # fmt: skip
    doc = json.loads(report.read_text()) if report.exists() else None
    return done, doc


def _verdicts(doc) -> dict[tuple[str, str], str]:
    return {(r["check_id"], r["subject"]["name"]): r["status"] for r in doc["results"]}


def test_a_distributed_run_gives_the_one_process_verdicts(broker, sshd_server, tmp_path):
    target = f"ssh://root@{sshd_server.host}:{sshd_server.port}"
    with worker(broker, sshd_server, "w1"):
        done, doc = coordinator(broker, tmp_path, "-t", target)
    assert doc is not None, done.stderr
    assert doc["targets"][0]["error"] is None, doc["targets"][0]["error"]
    assert doc["audited_by"] == {target: "w1"}
    local = subprocess.run(
        [sys.executable, "-m", "auditor", "run", "--no-store", "-q", "-r",
         f"json:{tmp_path / 'local.json'}", *sshd_server.auditor_args()],
        capture_output=True, text=True, timeout=300, env=_env(), check=False,
    )  # fmt: skip
    assert local.returncode == done.returncode, (local.stderr, done.stderr)
    one_process = json.loads((tmp_path / "local.json").read_text())
    ours, theirs = _verdicts(doc), _verdicts(one_process)
    # the only facts that may differ within seconds: which processes and sockets exist
    moving = {k for k in ours.keys() | theirs.keys() if k[0].startswith("host.net.listen")}
    assert {k: v for k, v in ours.items() if k not in moving} == {
        k: v for k, v in theirs.items() if k not in moving
    }
    assert doc["judged_with"]["digest"] == one_process["judged_with"]["digest"]


def test_zones_route_each_host_to_its_own_workers(broker, sshd_server, tmp_path):
    url = f"ssh://root@{sshd_server.host}:{sshd_server.port}"
    inventory = tmp_path / "fleet.yaml"
    inventory.write_text(yaml.safe_dump({"hosts": {
        "web-dc1": {"url": url, "zone": "dc1"},
        "web-dc2": {"url": url, "zone": "dc2"},
        "anywhere": {"url": url},
    }}))  # fmt: skip
    with (
        worker(broker, sshd_server, "w-dc1", "--queues", "dc1"),
        worker(broker, sshd_server, "w-dc2", "--queues", "dc2"),
        worker(broker, sshd_server, "w-default"),
    ):
        done, doc = coordinator(broker, tmp_path, "-i", str(inventory))
    assert doc is not None, done.stderr
    assert doc["audited_by"] == {"web-dc1": "w-dc1", "web-dc2": "w-dc2", "anywhere": "w-default"}
    assert all(t["error"] is None for t in doc["targets"])


def test_a_worker_refuses_targets_outside_its_allow_patterns(broker, sshd_server, tmp_path):
    target = f"ssh://root@{sshd_server.host}:{sshd_server.port}"
    with worker(broker, sshd_server, "guarded", "--allow", "ssh://*.dc1.example"):
        done, doc = coordinator(broker, tmp_path, "-t", target)
    assert done.returncode == 3, done.stderr
    (audited,) = doc["targets"]
    assert "matches no --allow pattern" in audited["error"] and audited["facts"] == []
    (down,) = doc["not_audited"]  # once, with its reason: not one error per check
    assert down["target"] == target and "matches no --allow pattern" in down["reason"]
    assert not [r for r in doc["results"] if r["target"] == target]


def test_a_worker_with_another_profile_does_not_judge(broker, sshd_server, tmp_path):
    """The task names overlay.yaml; the worker's own overlay.yaml says something else."""
    overlay = {"extends": "nist-800-190", "severity": {"host.os.container-optimized": "high"}}
    (tmp_path / "overlay.yaml").write_text(yaml.safe_dump(overlay))
    elsewhere = tmp_path / "worker-home"
    elsewhere.mkdir()
    overlay["severity"]["host.os.container-optimized"] = "medium"
    (elsewhere / "overlay.yaml").write_text(yaml.safe_dump(overlay))
    target = f"ssh://root@{sshd_server.host}:{sshd_server.port}"
    with worker(broker, sshd_server, "other-profile", cwd=elsewhere):
        done, doc = coordinator(broker, tmp_path, "-t", target, "--overlay", "overlay.yaml")
    (audited,) = doc["targets"]
    assert "judges with another profile" in audited["error"], audited
    assert done.returncode == 3


def _started_task(broker: RedisServer, timeout: float = 60) -> None:
    """Until some audit task is being audited (Celery's STARTED state in the backend)."""
    client = redis.Redis.from_url(broker.url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for key in client.scan_iter("celery-task-meta-*"):
            meta = client.get(key)
            if meta and json.loads(meta).get("status") == "STARTED":
                return
        time.sleep(0.02)
    raise AssertionError("no task was started")


def test_a_task_of_a_killed_worker_is_delivered_again_and_recorded_once(
    broker, sshd_server, tmp_path
):
    target = f"ssh://root@{sshd_server.host}:{sshd_server.port}"
    run = subprocess.Popen(
        [sys.executable, "-m", "auditor", "run", "--broker", broker.url, "--no-store", "-q",
         "-r", f"json:{tmp_path / 'killed.json'}", "-t", target],
        env=_env(), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    with worker(broker, sshd_server, "doomed", "--visibility-timeout", "5") as doomed:
        _started_task(broker)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
    with worker(broker, sshd_server, "survivor", "--visibility-timeout", "5"):
        _, stderr = run.communicate(timeout=240)
    doc = json.loads((tmp_path / "killed.json").read_text())
    assert [t["name"] for t in doc["targets"]] == [target], stderr
    assert doc["targets"][0]["error"] is None
    assert doc["audited_by"] == {target: "survivor"}
    assert doc["run"]["complete"] is True


def test_a_broker_that_goes_away_fails_the_targets_in_bounded_time(sshd_server, tmp_path):
    target = f"ssh://root@{sshd_server.host}:{sshd_server.port}"
    with redis_server(tmp_path) as gone:
        started = time.monotonic()
        run = subprocess.Popen(
            [sys.executable, "-m", "auditor", "run", "--broker", gone.url, "--no-store", "-q",
             "--answer-timeout", "15", "-r", f"json:{tmp_path / 'gone.json'}", "-t", target],
            env=_env(), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        time.sleep(3)  # the task is sent; no worker takes it
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 3, stderr
    assert time.monotonic() - started < 60
    doc = json.loads((tmp_path / "gone.json").read_text())
    assert "no worker answered within 15s" in doc["targets"][0]["error"]


def test_a_worker_keeps_image_layers_in_the_fleets_store(
    broker, sshd_server, own_dockerd, postgres_server, tmp_path
):
    """`auditor worker --db URL`: the layers a worker scanned are in the shared store, for
    every other worker and scheduled run (issue 19)."""
    busybox_image(own_dockerd.base_url)
    with docker.APIClient(base_url=own_dockerd.base_url, timeout=60) as api:
        layers = set(api.inspect_image("auditor-test/busybox:1")["RootFS"]["Layers"])
    store = sqlalchemy.create_engine(postgres_server.url)
    try:
        with store.begin() as conn:
            conn.execute(sqlalchemy.text("DELETE FROM image_layers"))
    except sqlalchemy.exc.ProgrammingError:
        pass  # no store there yet: the worker creates it
    target = f"docker://{own_dockerd.base_url}"
    try:
        with worker(broker, sshd_server, "w-layers", "--db", postgres_server.url):
            done, doc = coordinator(broker, tmp_path, "-t", target)
        assert doc is not None, done.stderr
        assert doc["targets"][0]["error"] is None and doc["audited_by"] == {target: "w-layers"}
        with store.connect() as conn:
            kept = {
                row[0] for row in conn.execute(sqlalchemy.text("SELECT diff_id FROM image_layers"))
            }
    finally:
        store.dispose()
    assert layers <= kept
