"""A stalled PostgreSQL never hangs a run: the real server (tests/servers/postgres.py) is
stopped with SIGSTOP while `auditor run` audits, and resumed with SIGCONT afterwards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

pytestmark = pytest.mark.integration

STORE_TIMEOUT = 10  # seconds: room for the store to open on a loaded machine


def server_processes(pid: int) -> list[int]:
    """The postmaster and every process it started (backends, checkpointer, ...)."""
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [pid, *(int(line) for line in children.stdout.split())]


@contextmanager
def stopped(pid: int) -> Iterator[None]:
    """The whole server stopped (SIGSTOP) inside the block, resumed (SIGCONT) after it."""
    processes = server_processes(pid)
    for process in processes:
        os.kill(process, signal.SIGSTOP)
    try:
        yield
    finally:
        for process in processes:
            os.kill(process, signal.SIGCONT)


def dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def run_ids(url: str) -> dict[str, bool]:
    with psycopg.connect(dsn(url), connect_timeout=10) as connection:
        try:
            rows = connection.execute("SELECT id, complete FROM runs").fetchall()
        except psycopg.errors.UndefinedTable:
            return {}
    return dict(rows)


def test_a_database_stopped_mid_run_is_a_store_error_with_the_reports_written(
    postgres_server, stalling_server, tmp_path
):
    before = set(run_ids(postgres_server.url))
    report = tmp_path / "results.json"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "AUDITOR_STORE_TIMEOUT": str(STORE_TIMEOUT),
    }
    started = time.monotonic()
    process = subprocess.Popen(
        # the silent SSH host keeps the run going for its 3 s connect timeout
        [sys.executable, "-m", "auditor", "run", "-q", "--target", "local://",
         "--target", f"ssh://root@{stalling_server.host}:{stalling_server.port}",
         "--connect-timeout", "3", "--db", postgres_server.url, "--report", f"json:{report}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env,
    )  # fmt: skip
    try:
        # the run row is committed before the audit starts: stop the server then
        while not set(run_ids(postgres_server.url)) - before:
            assert process.poll() is None, process.communicate()  # ended before the stop
            time.sleep(0.02)
        with stopped(postgres_server.pid):
            out, err = process.communicate(timeout=60)  # it hung for good before
            took = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 2, err
    assert f"the store did not answer within {STORE_TIMEOUT}s" in err
    assert "Traceback" not in err
    assert took < STORE_TIMEOUT * 2 + 20
    document = json.loads(report.read_text())  # the audit itself stands
    assert [target["name"] for target in document["targets"]][0] == "local://"
    local = [result for result in document["results"] if result["target"] == "local://"]
    assert any(result["status"] in ("pass", "fail") for result in local)
    # resumed, the server is whole: the run it began is there, marked incomplete
    runs = run_ids(postgres_server.url)
    assert runs[document["run"]["id"]] is False


def test_statements_carry_a_server_side_time_limit(postgres_server):
    from auditor.store import STATEMENT_TIMEOUT_MS, open_store

    store = open_store(postgres_server.url)
    try:
        with store.engine.connect() as connection:
            shown = connection.exec_driver_sql(
                "SELECT setting FROM pg_settings WHERE name = 'statement_timeout'"
            ).scalar()
    finally:
        store.close()
    assert shown == str(STATEMENT_TIMEOUT_MS)


@pytest.mark.parametrize("value", ["abc", "0", "-5", "inf"])
def test_a_bad_store_timeout_is_a_one_line_error(value, monkeypatch):
    from auditor.errors import AuditorError
    from auditor.store_writer import TIMEOUT_ENV, StoreWriter

    monkeypatch.setenv(TIMEOUT_ENV, value)
    with pytest.raises(AuditorError, match=f"{TIMEOUT_ENV}='{value}': not a number of seconds"):
        StoreWriter(None)
