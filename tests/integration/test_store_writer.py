"""The store's writer process (auditor/store_writer.py) against a real SQLite store: runs are
written by another process, failures there reach the run, and a killed auditor loses
nothing it handed over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from auditor.engine import Judged
from auditor.facts import new_fact, utc_now
from auditor.model import Result, Severity, Status, Subject, TargetKind, TargetRecord
from auditor.profiles import load_profile
from auditor.recorder import Recorder, RecordOptions
from auditor.store import open_store


@pytest.fixture(scope="module")
def profile():
    return load_profile()


def record(name: str) -> TargetRecord:
    now = utc_now()
    fact = new_fact("host.os", name, {"id": "debian", "name": name}, source="cat /etc/os-release")
    return TargetRecord(name, f"ssh://{name}", TargetKind.HOST, now, now, facts=(fact,))


def results(name: str) -> list[Result]:
    return [
        Result(
            check_id="host.os.container-optimized",
            control_id="4.5.1",
            title="The host runs a container-specific operating system",
            severity=Severity.LOW,
            target=name,
            subject=Subject(kind="host", name=name),
            status=Status.FAIL,
            message=f"{name} runs debian",
        )
    ]


def judged(name: str, copies: int = 1) -> Judged:
    """A target as the engine hands it over: its record, results and variables."""
    return Judged(record(name), results(name) * copies, {})


def stored_targets(url: str, run_id: str) -> tuple[list[str], bool]:
    """The names of the targets the store holds for a run, and whether it is complete."""
    with open_store(url) as store:
        doc = store.load_document(run_id, history=0)
    return [t["name"] for t in doc["targets"]], doc["run"]["complete"]


def _fresh_process(script: str) -> str:
    """Run `script` in a new interpreter (one thread, so the writer is forked and inherits
    what the script patched), with this module importable; its stdout."""
    code = f"import sys\nsys.path.insert(0, {os.path.dirname(__file__)!r})\n" + script
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_run_is_written_by_another_process(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    writers = tmp_path / "writers"
    out = _fresh_process(
        f"""
import os
import auditor.store
from test_store_writer import judged
from auditor.profiles import load_profile
from auditor.recorder import Recorder, RecordOptions

real_save = auditor.store.Store.save_target

def noted(self, run_id, target, target_results):  # runs in the writer (forked: inherited)
    with open({str(writers)!r}, "a") as out:
        out.write(f"{{os.getpid()}}\\n")
    real_save(self, run_id, target, target_results)

auditor.store.Store.save_target = noted
recorder = Recorder(load_profile(), ["a", "b"], RecordOptions(db={url!r}))
assert recorder.writer.start_method == "fork"
for name in ("a", "b"):
    recorder.target_done(judged(name))
doc = recorder.complete()
recorder.close()
assert recorder.store_error is None and doc["history"] == []
print(os.getpid(), recorder.run_id)
"""
    )
    parent, run_id = out.split()
    pids = set(writers.read_text().split())
    assert len(pids) == 1 and parent not in pids
    assert stored_targets(url, run_id) == (["a", "b"], True)


def test_the_audit_never_waits_for_the_store_to_open(tmp_path):
    """The default store opens while the targets are audited: handing it the run and its
    first targets returns at once, while the writer is still opening the store (2 s here),
    though they are ten times what a pipe holds by default (64 KiB)."""
    out = _fresh_process(
        f"""
import os, time
os.environ["XDG_DATA_HOME"] = {str(tmp_path)!r}
os.environ.pop("AUDITOR_DB", None)
import auditor.store
from test_store_writer import judged
from auditor.profiles import load_profile
from auditor.recorder import Recorder, RecordOptions

real_open = auditor.store.open_store

def slow(url):  # runs in the writer (forked: inherited)
    time.sleep(2)
    return real_open(url)

auditor.store.open_store = slow
profile = load_profile()
names = [f"host{{i}}" for i in range(20)]
started = time.monotonic()
recorder = Recorder(profile, names, RecordOptions())
assert recorder.writer.start_method == "fork"
for name in names:
    recorder.target_done(judged(name, copies=200))
handed = time.monotonic() - started
recorder.complete()
recorder.close()
assert recorder.store_error is None
print(handed, recorder.run_id)
"""
    )
    handed, run_id = out.split()
    assert float(handed) < 1.5, handed
    url = f"sqlite:///{tmp_path / 'auditor' / 'auditor.db'}"
    assert stored_targets(url, run_id) == ([f"host{i}" for i in range(20)], True)


def test_with_other_threads_running_the_writer_is_spawned(profile, tmp_path):
    """A forked child of a threaded process could inherit a held lock: spawn instead."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        recorder = Recorder(profile, ["a"], RecordOptions(db=url))
    finally:
        release.set()
        other.join()
    assert recorder.writer is not None and recorder.writer.start_method == "spawn"
    recorder.target_done(judged("a"))
    recorder.complete()
    recorder.close()
    assert recorder.store_error is None
    assert stored_targets(url, recorder.run_id) == (["a"], True)


def test_a_failed_write_is_raised_at_the_end_and_nothing_after_it_is_written(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    out = _fresh_process(
        f"""
import auditor.store
from auditor.store import StoreError
from test_store_writer import judged
from auditor.profiles import load_profile
from auditor.recorder import Recorder, RecordOptions

real_save = auditor.store.Store.save_target

def full_on_b(self, run_id, target, target_results):  # runs in the writer (forked)
    if target.name == "b":
        raise StoreError("cannot write to the database: disk full")
    real_save(self, run_id, target, target_results)

auditor.store.Store.save_target = full_on_b
recorder = Recorder(load_profile(), ["a", "b", "c"], RecordOptions(db={url!r}))
for name in ("a", "b", "c"):
    recorder.target_done(judged(name))
doc = recorder.complete()
recorder.close()
assert str(recorder.store_error) == "cannot write to the database: disk full"
assert [t["name"] for t in doc["targets"]] == ["a", "b", "c"]  # the report has them all
print(recorder.run_id)
"""
    )
    assert stored_targets(url, out.strip()) == (["a"], False)  # never marked complete


def test_a_writer_that_dies_is_an_error_not_a_hang(profile, tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    recorder = Recorder(profile, ["a", "b"], RecordOptions(db=url))
    assert recorder.writer is not None
    recorder.target_done(judged("a"))
    os.kill(recorder.writer.pid, signal.SIGKILL)
    recorder.target_done(judged("b"))
    started = time.monotonic()
    recorder.complete()
    recorder.close()
    assert time.monotonic() - started < 10
    assert recorder.store_error is not None
    assert "the store writer process stopped (exit code -9)" in str(recorder.store_error)


@pytest.mark.parametrize(
    ("leaving", "code"), [("os._exit(9)", 9), ("sys.exit(0)", 0)], ids=["killed", "no-close"]
)
def test_an_auditor_that_leaves_loses_nothing_it_handed_to_the_writer(tmp_path, leaving, code):
    """The parent leaves after handing over three targets, without closing the writer:
    killed (os._exit, as SIGKILL would leave it), or a normal exit that forgot to. The writer
    still commits all three, then stops (the exit does not wait for it forever); the run
    stays incomplete."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    script = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_store_writer import judged
        from auditor.profiles import load_profile
        from auditor.recorder import Recorder, RecordOptions

        recorder = Recorder(load_profile(), ["a", "b", "c"], RecordOptions(db={url!r}))
        for name in ("a", "b", "c"):
            recorder.target_done(judged(name))
        print(recorder.run_id, recorder.writer.pid, flush=True)
        {leaving}
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == code, done.stderr
    run_id, pid = done.stdout.split()
    deadline = time.monotonic() + 30
    while _alive(int(pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(int(pid)), "the writer outlived its work"
    assert stored_targets(url, run_id) == (["a", "b", "c"], False)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
