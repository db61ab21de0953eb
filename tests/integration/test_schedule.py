"""`auditor schedule` as a real long-running process with a second-level cron schedule."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from auditor.store import open_store

pytestmark = pytest.mark.integration

EVERY_SECOND = "* * * * * *"  # croniter: a sixth field is seconds


def schedule(tmp_path: Path, db: Path, *args: str, lock: Path | None = None) -> subprocess.Popen:
    argv = [
        sys.executable, "-m", "auditor", "schedule", "--cron", EVERY_SECOND,
        "--lock", str(lock or tmp_path / "job.lock"), *args,
        "--db", str(db), "--quiet", "--report", f"json:{tmp_path / 'last.json'}",
    ]  # fmt: skip
    return subprocess.Popen(
        argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def stored(db: Path):
    with open_store(str(db)) as store:
        return sorted(store.list_runs(limit=None), key=lambda r: r.started_at)


def test_a_job_runs_on_schedule_and_every_run_is_stored(tmp_path, closed_port):
    db = tmp_path / "store.db"
    proc = schedule(
        tmp_path, db, "--max-runs", "2",
        "--target", f"ssh://127.0.0.1:{closed_port}", "--connect-timeout", "1",
    )  # fmt: skip
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "run 1 started" in err and "run 2 exited 3" in err  # 3: no target could be audited
    runs = stored(db)
    assert len(runs) == 2 and all(r.complete for r in runs)
    assert all(r.targets == [f"ssh://127.0.0.1:{closed_port}"] for r in runs)
    assert (tmp_path / "last.json").exists()


def test_runs_of_a_slow_job_never_overlap(tmp_path, stalling_server):
    """Each run waits 3 s for a server that never answers; the schedule fires every second,
    and a second scheduler of the same job runs beside the first: still one run at a time."""
    db = tmp_path / "store.db"
    slow = ["--target", f"ssh://{stalling_server.host}:{stalling_server.port}",
            "--connect-timeout", "3"]  # fmt: skip
    first = schedule(tmp_path, db, "--max-runs", "2", *slow)
    time.sleep(0.5)
    second = schedule(tmp_path, db, "--max-runs", "1", *slow)
    _, err_first = first.communicate(timeout=180)
    _, err_second = second.communicate(timeout=180)
    assert first.returncode == 0 and second.returncode == 0, err_first + err_second
    assert "fire time(s) while the run was going" in err_first + err_second
    assert "another run of this job holds" in err_first + err_second
    runs = stored(db)
    assert len(runs) == 3
    for earlier, later in zip(runs, runs[1:], strict=False):
        assert earlier.finished_at is not None
        assert earlier.finished_at <= later.started_at, (earlier, later)


def test_sigterm_stops_the_scheduler_and_keeps_the_running_audit(tmp_path, stalling_server):
    db = tmp_path / "store.db"
    proc = schedule(
        tmp_path, db, "--target", f"ssh://{stalling_server.host}:{stalling_server.port}",
        "--connect-timeout", "30",
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (db.exists() and stored(db)):  # the audit is running and stored as it goes
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stopped after 1 run(s)" in err
    assert f"run 1 exited {128 + signal.SIGTERM}" in err
    (run,) = stored(db)
    assert run.complete is False and run.finished_at is not None
