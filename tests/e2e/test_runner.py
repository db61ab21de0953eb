"""The run service (auditor/runner.py): live targets and a bundle's facts go through the same
life cycle (recorder, store, reports, gates), and an interrupted run keeps what finished."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from auditor import engine, runner
from auditor.config import Gates, TargetSpec
from auditor.errors import ExitStatus
from auditor.model import Severity, Status, TargetKind, TargetRecord
from auditor.profiles import load_profile
from auditor.recorder import RecordOptions
from auditor.reporters import ReportRequest
from auditor.runner import CollectedTargets, LiveTargets, RunPlan


@pytest.fixture(scope="module")
def profile():
    return load_profile()


@pytest.fixture(scope="module")
def local_record(profile):
    """This machine's facts, collected once for real."""
    return engine.collect(profile, TargetSpec(url="local://", name="this-host"))


def _execute(profile, source, tmp_path, gates=None, store=False):
    report = tmp_path / "results.json"
    lines: list[str] = []
    plan = RunPlan(
        reports=[ReportRequest("json", str(report))],
        record=RecordOptions(store=store, db=f"sqlite:///{tmp_path / 'store.db'}"),
        gates=gates or Gates(),
        quiet=True,
    )
    status = runner.execute(profile, source, plan, lines.append)
    return status, json.loads(report.read_text()), lines


def test_collected_facts_are_judged_as_a_live_run_judges_them(profile, local_record, tmp_path):
    """The same facts give the same verdicts whichever source hands them over."""
    status, doc, _ = _execute(profile, CollectedTargets([(local_record, {})]), tmp_path)
    judged = engine.evaluate(profile, local_record, profile.variables)
    verdicts = {(r.check_id, r.subject.name): str(r.status) for r in judged}
    assert {(r["check_id"], r["subject"]["name"]): r["status"] for r in doc["results"]
            if r["target"] == "this-host"} == verdicts  # fmt: skip
    assert status in (ExitStatus.OK, ExitStatus.GATE_FAILED)
    # attestation questions are asked once, for the kinds of target audited
    manual = [r for r in doc["results"] if r["target"] == engine.ORGANISATION]
    assert manual and len({r["check_id"] for r in manual}) == len(manual)


def test_the_document_and_the_store_say_how_the_run_was_judged(profile, local_record, tmp_path):
    from auditor.store import open_store

    source = CollectedTargets([(local_record, {"max_package_list_age_days": 3})])
    _, doc, _ = _execute(profile, source, tmp_path, store=True)
    judged = doc["judged_with"]
    assert judged["profile"] == {"id": profile.id, "version": profile.version}
    assert judged["digest"].startswith("sha256:") and len(judged["digest"]) == 71
    assert judged["variables"] == json.loads(json.dumps(profile.variables))
    assert judged["target_variables"] == {"this-host": {"max_package_list_age_days": 3}}
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        stored = store.load_document(doc["run"]["id"], history=0)
    assert stored["judged_with"] == judged


@pytest.mark.parametrize(
    ("gates", "expected"),
    [
        (Gates(), ExitStatus.OK),
        (Gates(fail_under=100.1), ExitStatus.GATE_FAILED),
        (Gates(min_coverage=100.1), ExitStatus.GATE_FAILED),
        (Gates(fail_on=Severity.INFO), ExitStatus.GATE_FAILED),
    ],
    ids=["none", "fail-under", "min-coverage", "fail-on"],
)
def test_gates_decide_the_exit_status(profile, local_record, tmp_path, gates, expected):
    status, doc, lines = _execute(profile, CollectedTargets([(local_record, {})]), tmp_path, gates)
    has_failure = any(r["status"] == Status.FAIL for r in doc["results"])
    if gates.fail_on is not None and not has_failure:
        expected = ExitStatus.OK
    assert status is expected
    assert any("gate failed" in line for line in lines) == (expected is ExitStatus.GATE_FAILED)


def test_no_target_audited_is_exit_3_with_each_reason(profile, tmp_path):
    down = TargetRecord("down", "ssh://down", TargetKind.HOST, "t", "t", error="refused")
    status, doc, lines = _execute(profile, CollectedTargets([(down, {})]), tmp_path)
    assert status is ExitStatus.NO_TARGET
    assert lines == ["auditor: down: refused"]
    assert [t["name"] for t in doc["targets"]] == ["down"]


def test_live_targets_go_through_the_engine(profile, tmp_path, closed_port):
    specs = [TargetSpec(url=f"ssh://root@127.0.0.1:{closed_port}", connect_timeout=2)]
    status, doc, _ = _execute(profile, LiveTargets(specs), tmp_path)
    assert status is ExitStatus.NO_TARGET
    assert doc["targets"][0]["error"] and doc["run"]["complete"] is True


def test_an_interrupted_run_keeps_what_finished(tmp_path):
    """SIGTERM after the first of two targets: the report holds that one, marked incomplete,
    and the process leaves with 128+15 without waiting for the second."""
    report = tmp_path / "results.json"
    script = textwrap.dedent(
        f"""
        import os, signal, time
        from auditor import engine, runner
        from auditor.config import TargetSpec
        from auditor.profiles import load_profile
        from auditor.recorder import RecordOptions
        from auditor.reporters import ReportRequest

        profile = load_profile()
        first = engine.collect(profile, TargetSpec(url="local://", name="first"))

        class Slow:
            kind = "run"
            names = ["first", "second"]
            makes_cycles = True

            def judge(self, profile, on_target_done):
                on_target_done(engine.Judged(first, engine.evaluate(profile, first,
                                                                   profile.variables), {{}}))
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(60)  # the second target never comes

        plan = runner.RunPlan(reports=[ReportRequest("json", {str(report)!r})],
                              record=RecordOptions(store=False), quiet=True)
        runner.execute(profile, Slow(), plan, print)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
        cwd=tmp_path, env=dict(os.environ), check=False,
    )  # fmt: skip
    assert done.returncode == 128 + 15, done.stderr
    doc = json.loads(report.read_text())
    assert [t["name"] for t in doc["targets"]] == ["first"]
    assert doc["run"]["complete"] is False
    assert "interrupted: kept 1 of 2 target(s)" in done.stdout
