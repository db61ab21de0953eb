"""The report view arranges the document for reading and never computes a score."""

from __future__ import annotations

import copy
from collections import Counter

from report_docs import fixture_document

from auditor.reporters import view


def test_every_result_is_shown_once_somewhere():
    doc = fixture_document()
    report = view.build(doc)
    shown: Counter[str] = Counter()
    for check in report.checks:
        for finding in check.findings:
            shown.update(i.result["status"] for i in finding.items)
        shown.update(i.result["status"] for i in check.waived + check.manual)
        shown["pass"] += sum(len(s.subjects) for s in check.passed)
        shown["skip"] += sum(len(s.subjects) for s in check.skipped)
    assert shown == Counter(r["status"] for r in doc["results"])


def test_scores_are_the_documents_own():
    doc = fixture_document()
    report = view.build(doc)
    assert report.overall is doc["score"]["overall"]
    for section in report.sections:
        assert section.score == doc["score"]["by_section"].get(section.id)
    for control in report.controls:
        assert control.score == doc["score"]["by_control"].get(control.id)
    for target in report.targets:
        assert target.score == doc["score"]["by_target"][target.name]


def test_identical_findings_on_several_targets_are_one_finding():
    doc = copy.deepcopy(fixture_document())
    failing = next(r for r in doc["results"] if r["status"] == "fail")
    names = [t["name"] for t in doc["targets"] if t["kind"] == "host"]
    clones = []
    for name in names:
        clone = copy.deepcopy(failing)
        clone["target"] = name
        clone["subject"] = {**clone["subject"], "name": name}
        clones.append(clone)
    doc["results"] = [r for r in doc["results"] if r["check_id"] != failing["check_id"]] + clones
    check = next(c for c in view.build(doc).checks if c.id == failing["check_id"])
    assert len(check.findings) == 1
    finding = check.findings[0]
    assert finding.target_count == len(names) > 1
    assert [i.target.name for i in finding.items] == names
    assert all(i.subject == "" for i in finding.items)  # about the target itself


def test_top_checks_rank_by_severity_then_spread():
    report = view.build(fixture_document())
    ranks = [
        (view.SEVERITIES.index(c.severity), -c.failing_targets, -c.failing)
        for c in report.top_checks
    ]
    assert ranks == sorted(ranks)
    assert 0 < len(report.top_checks) <= view.TOP_CHECKS


def test_guide_sections_come_first_and_are_all_shown():
    report = view.build(fixture_document())
    assert [s.id for s in report.sections][:6] == list(view.GUIDE_SECTIONS)


def test_attestations_hang_under_their_control_and_pseudo_targets_stay_out_of_charts():
    report = view.build(fixture_document())
    control = next(c for c in report.controls if c.id == "4.5.1")
    attest = next(c for c in control.checks if c.id == "attest.4.5.1")
    assert attest.manual and attest.manual[0].result["attestation"]["answer"] == "yes"
    assert "organisation" not in [name for name, _, _ in report.target_rows]
    assert report.attested and report.waived


def test_history_adds_this_run_last():
    report = view.build(fixture_document())
    assert len(report.history) == 4
    assert report.history[-1]["run_id"] == fixture_document()["run"]["id"]


def test_print_limits_shrink_for_large_runs():
    report = view.build(fixture_document())
    limits = report.print_limits
    assert 3 <= limits["findings"] <= 10
    assert limits["hash"] in (16, 64)
