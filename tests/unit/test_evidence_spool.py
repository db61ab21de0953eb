"""The recorder's evidence spool: facts' data on disk until the reports are written, read
back exactly as it was, and every report the same as from data held in memory."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from dataclasses import replace

from report_docs import fixture_run, with_history

from auditor import document
from auditor.evidence_spool import EvidenceSpool
from auditor.facts import canonical_json, new_fact
from auditor.model import Run, TargetKind, TargetRecord, fact_data
from auditor.profiles import load_profile
from auditor.reporters import FORMATS, reporter_for
from auditor.reporters.json import JsonReporter


def _record(name: str, **facts: object) -> TargetRecord:
    made = tuple(new_fact(fact, name, data, source="test") for fact, data in facts.items())
    return TargetRecord(name, f"ssh://{name}", TargetKind.HOST, "t0", "t1", facts=made)


def test_a_kept_record_holds_no_data_and_the_spool_gives_it_back():
    spool = EvidenceSpool()
    first = _record("a", **{"host.os": {"id": "debian", "version": 12}, "host.ports": [22]})
    second = _record("b", **{"host.os": {"id": "debian", "version": 12}, "host.ports": [80]})
    kept = [spool.keep(first), spool.keep(second)]
    assert all(fact.data is None for record in kept for fact in record.facts)
    assert [f.sha256 for f in kept[0].facts] == [f.sha256 for f in first.facts]
    assert len(spool) == 3  # the same host.os of both hosts is kept once
    for record in (first, second):
        for fact in record.facts:
            assert fact_data(spool[fact.sha256]) == fact.data
            assert spool.raw(fact.sha256) == canonical_json(fact.data).encode()
    spool.close()


def test_a_fact_that_could_not_be_collected_is_not_spooled():
    spool = EvidenceSpool()
    failed = new_fact("host.os", "a", None, source="test", error="timed out")
    kept = spool.keep(TargetRecord("a", "ssh://a", TargetKind.HOST, "t0", "t1", facts=(failed,)))
    assert len(spool) == 0 and kept.facts[0].error == "timed out"
    spool.close()


def _spooled(plain_run: Run) -> tuple[Run, EvidenceSpool]:
    spool = EvidenceSpool()
    records = tuple(spool.keep(record) for record in plain_run.targets)
    return replace(plain_run, targets=records), spool


def test_every_report_of_a_spooled_run_is_the_report_of_the_run_held_in_memory():
    profile = load_profile()
    run = fixture_run(profile)
    plain = with_history(document.build(run, profile))
    spooled_run, spool = _spooled(run)
    spooled = with_history(document.build(spooled_run, profile, evidence=spool))
    assert len(spool) == len(plain["evidence"]) > 10

    streamed = io.BytesIO()
    JsonReporter().write_to(spooled, streamed)
    expected = json.loads(document.encode(plain))
    assert json.loads(streamed.getvalue()) == expected
    assert json.loads(document.encode(spooled)) == expected  # encode() gathers it all
    for fmt in sorted(set(FORMATS) - {"pdf", "json"}):  # the PDF is the HTML's, timestamped
        assert reporter_for(fmt).render(spooled) == reporter_for(fmt).render(plain), fmt
    spool.close()


def test_values_the_fast_encoder_refuses_stream_through_the_stdlib():
    profile = load_profile()
    spooled_run, spool = _spooled(fixture_run(profile))
    spooled = document.build(spooled_run, profile, evidence=spool)
    spooled["results"][0]["observed"]["inode"] = 2**70
    streamed = io.BytesIO()
    document.write_json(spooled, streamed)
    written = json.loads(streamed.getvalue())
    assert written["results"][0]["observed"]["inode"] == 2**70
    assert written["evidence"] == {sha: fact_data(spool[sha]) for sha in spool}
    spool.close()


def test_evidence_the_file_cannot_take_stays_in_memory():
    """A file size limit (as a full disk would) refuses the write: the evidence is kept."""
    program = """
import resource, signal
from auditor.evidence_spool import EvidenceSpool
from auditor.facts import new_fact
from auditor.model import TargetKind, TargetRecord, fact_data
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
small = new_fact("host.os", "a", {"id": "debian"}, source="t")
large = new_fact("host.files", "a", ["x" * 100] * 100, source="t")
spool = EvidenceSpool()
spool.keep(TargetRecord("a", "ssh://a", TargetKind.HOST, "t0", "t1", facts=(small, large)))
assert fact_data(spool[small.sha256]) == small.data
assert fact_data(spool[large.sha256]) == large.data
assert spool._held and large.sha256 in spool._held and small.sha256 not in spool._held
print(len(spool))
"""
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2"
    assert "evidence kept in memory: the spool file failed" in done.stderr


def test_the_recorder_keeps_no_fact_data_of_a_finished_target():
    from auditor import engine
    from auditor.recorder import Recorder, RecordOptions

    profile = load_profile()
    record = _record("a", **{"host.os": {"id": "debian", "version_id": "12"}})
    recorder = Recorder(profile, ["a"], RecordOptions(store=False))
    try:
        results = engine.evaluate(profile, record, profile.variables)
        recorder.target_done(engine.Judged(record, results, profile.variables))
        held, _ = recorder.done["a"]
        assert [fact.data for fact in held.facts] == [None]
        doc = recorder.complete()
        (sha,) = doc["evidence"]
        assert fact_data(doc["evidence"][sha]) == {"id": "debian", "version_id": "12"}
    finally:
        recorder.close()


def test_without_a_writable_temporary_directory_the_evidence_stays_in_memory():
    program = """
import tempfile
from auditor.evidence_spool import EvidenceSpool
from auditor.facts import new_fact
from auditor.model import TargetKind, TargetRecord, fact_data
tempfile.tempdir = "/nonexistent/auditor-tmp"
fact = new_fact("host.os", "a", {"id": "debian"}, source="t")
spool = EvidenceSpool()
spool.keep(TargetRecord("a", "ssh://a", TargetKind.HOST, "t0", "t1", facts=(fact,)))
assert fact_data(spool[fact.sha256]) == fact.data and len(spool) == 1
spool.close()
"""
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "evidence kept in memory: no spool file" in done.stderr
