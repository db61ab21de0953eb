"""A run killed part-way keeps every target it finished, marked incomplete (real sshd)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from servers.sshd import NOSUDO_USER, PWSUDO_USER, ROOT_USER, SUDO_USER

from auditor.store import open_store

pytestmark = pytest.mark.integration

USERS = (ROOT_USER, NOSUDO_USER, SUDO_USER, PWSUDO_USER)


def start_run(sshd_server, tmp_path: Path) -> tuple[subprocess.Popen[str], Path, list[str]]:
    """`auditor run` of the test sshd as four users, one at a time, in a child process."""
    db = tmp_path / "store.db"
    targets = [f"ssh://{user}@{sshd_server.host}:{sshd_server.port}" for user in USERS]
    argv = [
        sys.executable, "-m", "auditor", "run", "--quiet", "--concurrency", "1",
        "--db", str(db), "--report", f"json:{tmp_path / 'results.json'}",
        "--known-hosts", str(sshd_server.known_hosts_path),
        "--identity", str(sshd_server.client_key_path), "--ssh-config", "/dev/null",
    ]  # fmt: skip
    for target in targets:
        argv += ["--target", target]
    proc = subprocess.Popen(
        argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    return proc, db, targets


def wait_for_first_target(proc: subprocess.Popen[str], db: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if db.exists():
            with open_store(str(db)) as store:
                runs = store.list_runs()
                if runs and runs[0].saved_targets >= 1:
                    return
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("no target was stored in time")


def test_sigkill_mid_run_leaves_a_readable_incomplete_run(sshd_server, tmp_path):
    proc, db, targets = start_run(sshd_server, tmp_path)
    wait_for_first_target(proc, db)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    with open_store(str(db)) as store:
        (info,) = store.list_runs()
        assert info.complete is False and info.finished_at is None
        assert info.targets == targets
        assert 1 <= info.saved_targets < len(targets)
        document = store.load_document(info.id)
    assert document["run"]["complete"] is False
    stored = [t["name"] for t in document["targets"]]
    assert stored == targets[: len(stored)]  # concurrency 1: the first ones, in order
    assert all(t["error"] is None and t["facts"] for t in document["targets"])
    results = [r for r in document["results"] if r["target"] == targets[0]]
    assert {r["status"] for r in results} >= {"pass", "fail"}
    assert all(f["sha256"] in document["evidence"] for f in document["targets"][0]["facts"]
               if f["error"] is None)  # fmt: skip


def test_sigterm_keeps_what_finished_and_writes_an_incomplete_report(sshd_server, tmp_path):
    proc, db, targets = start_run(sshd_server, tmp_path)
    wait_for_first_target(proc, db)
    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert time.monotonic() - signalled < 15  # it does not wait for the queued targets
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "interrupted: kept" in err and "(marked incomplete)" in err
    report = json.loads((tmp_path / "results.json").read_text())
    assert report["run"]["complete"] is False
    with open_store(str(db)) as store:
        (info,) = store.list_runs()
        assert info.complete is False and info.finished_at is not None
        assert info.id == report["run"]["id"]
        assert info.score == report["score"]["overall"]["value"]
        document = store.load_document(info.id)
    assert [t["name"] for t in document["targets"]] == [t["name"] for t in report["targets"]]
    assert 1 <= len(report["targets"]) < len(targets)
    # the attestation questions are still asked in an interrupted run
    assert any(r["target"] == "organisation" for r in document["results"])
