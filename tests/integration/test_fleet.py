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
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from servers.dockerd import busybox_image
from servers.rabbitmq import RabbitServer, rabbitmq_server
from servers.redis import RedisServer, redis_server
from volatile import moving_host_checks

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> Iterator[RedisServer]:
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory) -> Iterator[RedisServer]:
    """Redis serving TLS only, its certificate from a test CA the clients are given."""
    with redis_server(tmp_path_factory.mktemp("redis-tls"), tls=True) as server:
        yield server


@pytest.fixture(scope="module")
def rabbit_broker(tmp_path_factory):
    with rabbitmq_server(tmp_path_factory.mktemp("rabbitmq")) as server:
        yield server


def _env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[2])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}


@contextmanager
def worker(
    broker: RedisServer | RabbitServer, sshd, name: str, *args: str, cwd: Path | None = None
):
    """An `auditor worker` process with the test sshd's key and known_hosts as its own; its
    log beside the broker's, in pytest's temporary directory."""
    log = broker.log_path.parent / f"worker-{name}-{os.getpid()}.log"
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
    moving = {k for k in ours.keys() | theirs.keys() if k[0] in moving_host_checks()}
    assert {k: v for k, v in ours.items() if k not in moving} == {
        k: v for k, v in theirs.items() if k not in moving
    }
    assert doc["judged_with"]["digest"] == one_process["judged_with"]["digest"]


def _auditor(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "auditor", *args], capture_output=True, text=True,
        timeout=timeout, env=_env(), cwd=cwd, check=False,
    )  # fmt: skip


def _signing_key(directory: Path) -> tuple[Path, Path]:
    key = Ed25519PrivateKey.generate()
    private, public = directory / "signer.pem", directory / "signer.pub.pem"
    private.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))  # fmt: skip
    public.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo,
    ))  # fmt: skip
    return private, public


def test_a_distributed_collect_writes_the_one_process_bundle(broker, sshd_server, tmp_path):
    """Workers gather, the coordinator (which has no SSH key) writes and signs the bundle;
    evaluating it gives the verdicts of a bundle collected in one process."""
    private, public = _signing_key(tmp_path)
    target = f"ssh://root@{sshd_server.host}:{sshd_server.port}"
    with worker(broker, sshd_server, "gatherer"):
        fleet = _auditor("collect", "--broker", broker.url, "-t", target, "-o", "fleet.tar.gz",
                         "--sign-key", str(private), cwd=tmp_path)  # fmt: skip
    assert fleet.returncode == 0, fleet.stderr
    local = _auditor("collect", *sshd_server.auditor_args(), "-o", "local.tar.gz",
                     "--sign-key", str(private), cwd=tmp_path)  # fmt: skip
    assert local.returncode == 0, local.stderr
    docs = {}
    for name in ("fleet", "local"):
        evaluated = _auditor("evaluate", f"{name}.tar.gz", "--verify-key", str(public),
                             "--no-store", "-q", "-r", f"json:{name}.json",
                             cwd=tmp_path)  # fmt: skip
        assert evaluated.returncode in (0, 1), evaluated.stderr
        docs[name] = json.loads((tmp_path / f"{name}.json").read_text())
    (fleet_target,) = docs["fleet"]["targets"]
    assert fleet_target["error"] is None and fleet_target["facts"], fleet_target
    assert [f["name"] for f in fleet_target["facts"]] == [
        f["name"] for f in docs["local"]["targets"][0]["facts"]
    ]
    ours, theirs = _verdicts(docs["fleet"]), _verdicts(docs["local"])
    moving = {k for k in ours.keys() | theirs.keys() if k[0].startswith("host.net.listen")}
    assert {k: v for k, v in ours.items() if k not in moving} == {
        k: v for k, v in theirs.items() if k not in moving
    }
    assert len(ours) > 20


@pytest.mark.parametrize("scheme", ["rediss", "amqp"])
def test_tls_redis_and_rabbitmq_carry_a_run(scheme, request, sshd_server, tmp_path):
    """The same run through Redis over TLS (password, server verified against the test CA)
    and through RabbitMQ (user and password): Celery's own transports, no code of ours."""
    server = request.getfixturevalue({"rediss": "tls_broker", "amqp": "rabbit_broker"}[scheme])
    assert server.url.startswith(f"{scheme}://")
    target = f"ssh://root@{sshd_server.host}:{sshd_server.port}"
    with worker(server, sshd_server, f"w-{scheme}"):
        done, doc = coordinator(server, tmp_path, "-t", target)
    assert doc is not None, done.stderr
    assert doc["targets"][0]["error"] is None, doc["targets"][0]["error"]
    assert doc["audited_by"] == {target: f"w-{scheme}"}
    assert len(doc["results"]) > 20


def test_a_tls_broker_whose_certificate_is_not_trusted_is_refused(tls_broker, tmp_path):
    """Without the test CA the coordinator does not trust the server: the target is an error
    naming the broker, in bounded time."""
    untrusted = tls_broker.url.split("&ssl_ca_certs=")[0]
    started = time.monotonic()
    done = _auditor("run", "--broker", untrusted, "--no-store", "-q", "--answer-timeout", "30",
                    "-r", "json:untrusted.json", "-t", "ssh://nowhere.invalid",
                    cwd=tmp_path)  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert time.monotonic() - started < 120
    doc = json.loads((tmp_path / "untrusted.json").read_text())
    assert "certificate verify failed" in doc["targets"][0]["error"], doc["targets"][0]["error"]


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
    # the worker serves before the run starts: a run first asks which workers are alive
    with worker(broker, sshd_server, "doomed", "--visibility-timeout", "5") as doomed:
        run = subprocess.Popen(
            [sys.executable, "-m", "auditor", "run", "--broker", broker.url, "--no-store", "-q",
             "-r", f"json:{tmp_path / 'killed.json'}", "-t", target],
            env=_env(), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
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
    """Redis stops while a worker audits the target: the answer never comes back."""
    target = f"ssh://root@{sshd_server.host}:{sshd_server.port}"
    with redis_server(tmp_path) as gone, worker(gone, sshd_server, "stranded") as stranded:
        started = time.monotonic()
        run = subprocess.Popen(
            [sys.executable, "-m", "auditor", "run", "--broker", gone.url, "--no-store", "-q",
             "--answer-timeout", "15", "-r", f"json:{tmp_path / 'gone.json'}", "-t", target],
            env=_env(), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        _started_task(gone)
        os.kill(gone.pid, signal.SIGKILL)
        _, stderr = run.communicate(timeout=120)
        stranded.kill()  # its broker is gone: nothing to finish
    assert run.returncode == 3, stderr
    assert time.monotonic() - started < 60
    doc = json.loads((tmp_path / "gone.json").read_text())
    assert "no worker answered within 15s" in doc["targets"][0]["error"]


def test_answers_past_redis_pubsub_buffer_are_all_recorded(sshd_server, tmp_path):
    """Eight answers of a real host (facts and results: more than 100 KiB each) against a
    Redis whose pub/sub clients may hold 256 KiB: a subscriber would be closed by Redis and
    miss answers; the coordinator polls, and records every one in seconds."""
    url = f"ssh://root@{sshd_server.host}:{sshd_server.port}"
    inventory = tmp_path / "fleet.yaml"
    inventory.write_text(yaml.safe_dump({"hosts": {f"h{n}": {"url": url} for n in range(8)}}))
    small = ["--client-output-buffer-limit", "pubsub 256kb 128kb 60"]
    with (
        redis_server(tmp_path, options=small) as tight,
        worker(tight, sshd_server, "w-tight", "--concurrency", "4"),
    ):
        done, doc = coordinator(tight, tmp_path, "-i", str(inventory), "--answer-timeout", "120")
    assert doc is not None, done.stderr
    assert {t["name"]: t["error"] for t in doc["targets"]} == {f"h{n}": None for n in range(8)}
    assert "output buffer limits" not in tight.log_path.read_text()


def test_a_zone_without_a_live_worker_fails_at_once(broker, sshd_server, tmp_path):
    """dc9 has no worker: its host is an error in seconds, not after the answer timeout;
    dc1's host is audited."""
    url = f"ssh://root@{sshd_server.host}:{sshd_server.port}"
    inventory = tmp_path / "fleet.yaml"
    inventory.write_text(yaml.safe_dump({"hosts": {
        "served": {"url": url, "zone": "dc1"},
        "stranded": {"url": url, "zone": "dc9"},
    }}))  # fmt: skip
    with worker(broker, sshd_server, "w-dc1", "--queues", "dc1"):
        started = time.monotonic()
        done, doc = coordinator(broker, tmp_path, "-i", str(inventory), "--answer-timeout", "600")
    assert time.monotonic() - started < 120, "waited for the answer timeout"
    assert doc is not None, done.stderr
    errors = {t["name"]: t["error"] for t in doc["targets"]}
    assert errors == {
        "served": None,
        "stranded": "no worker serves zone 'dc9' (none answered a ping)",
    }
    assert doc["audited_by"] == {"served": "w-dc1"}


def _stored_runs(db: str, target: str, cwd: Path) -> list[dict]:
    listed = _auditor("runs", "list", "--db", db, "--target", target, "-f", "json", cwd=cwd)
    assert listed.returncode == 0, listed.stderr
    return json.loads(listed.stdout)


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def test_a_killed_coordinator_leaves_an_incomplete_run_with_what_finished(
    broker, sshd_server, postgres_server, tmp_path
):
    """SIGKILL the coordinator once two of six targets are stored in PostgreSQL: the run
    stays there, marked incomplete, with the targets that finished."""
    url = f"ssh://root@{sshd_server.host}:{sshd_server.port}"
    names = [f"killed-{os.getpid()}-{time.monotonic_ns()}-{n}" for n in range(6)]
    inventory = tmp_path / "fleet.yaml"
    inventory.write_text(yaml.safe_dump({"hosts": {name: {"url": url} for name in names}}))
    db = postgres_server.url
    with worker(broker, sshd_server, "steady", "--concurrency", "1"):
        run = subprocess.Popen(
            [sys.executable, "-m", "auditor", "run", "--broker", broker.url, "--db", db, "-q",
             "-r", f"json:{tmp_path / 'never.json'}", "-i", str(inventory)],
            env=_env(), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            stored = _stored_runs(db, names[0], tmp_path)
            if stored and stored[0]["saved_targets"] >= 2:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"two targets were not stored in time: {stored}")
        writers = _children(run.pid)
        assert writers, "the store writer process was not found"
        run.send_signal(signal.SIGKILL)
        run.wait()
    for pid in writers:  # the store's writer finishes what it was handed, then leaves
        deadline = time.monotonic() + 30
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not Path(f"/proc/{pid}").exists(), f"process {pid} outlived its coordinator"
    (info,) = _stored_runs(db, names[0], tmp_path)
    assert info["complete"] is False and info["targets"] == names
    assert 2 <= info["saved_targets"] < 6
    table = _auditor("runs", "list", "--db", db, "--target", names[0], cwd=tmp_path)
    assert f"INCOMPLETE ({info['saved_targets']}/6)" in table.stdout
    shown = _auditor("runs", "show", info["id"], "--db", db, "-f", "json", cwd=tmp_path)
    doc = json.loads(shown.stdout)
    assert doc["run"]["complete"] is False
    kept = [t["name"] for t in doc["targets"]]
    assert len(kept) == info["saved_targets"] and set(kept) < set(names)
    assert all(t["error"] is None and t["facts"] for t in doc["targets"])
    assert not (tmp_path / "never.json").exists()


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


def test_a_backlog_of_answers_is_read_a_few_at_a_time(broker):
    """Workers outran the coordinator: 300 answers wait in Redis. The coordinator's poll
    hands every one on, reading at most ANSWERS_PER_READ per MGET and deleting what it read,
    and one that never comes ends the wait with Celery's TimeoutError after the timeout."""
    from celery.exceptions import TimeoutError as NoAnswer

    from auditor.fleet.app import make_app
    from auditor.fleet.results import ANSWERS_PER_READ

    backend = make_app(broker.url, polled=True).backend
    read: list[int] = []
    mget = backend.mget
    backend.mget = lambda keys: read.append(len(keys)) or mget(keys)
    answered = {f"perf-backlog-{n}": {"n": n, "pad": "x" * 4096} for n in range(300)}
    for task_id, answer in answered.items():
        backend.store_result(task_id, answer, "SUCCESS")
    got = dict(backend.get_many(set(answered), timeout=5, interval=0.1))
    assert {task_id: meta["result"] for task_id, meta in got.items()} == answered
    assert max(read) <= ANSWERS_PER_READ < 300 and sum(read) == 300
    assert not any(backend.get(backend.get_key_for_task(task_id)) for task_id in answered)
    backend.store_result("answered-late", {"n": -1}, "SUCCESS")
    started = time.monotonic()
    with pytest.raises(NoAnswer):
        list(backend.get_many({"answered-late", "never-answered"}, timeout=1, interval=0.2))
    assert 0.9 < time.monotonic() - started < 5
