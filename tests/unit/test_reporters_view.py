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


def test_resources_gather_everything_wrong_with_one_subject():
    doc = fixture_document()
    report = view.build(doc)
    audited = {t["name"] for t in doc["targets"] if not t["error"]}
    wrong = [
        r for r in doc["results"] if r["status"] in ("fail", "error") and r["target"] in audited
    ]
    listed = [i.result for g in report.resources for r in g.resources for i in r.items]
    assert sorted(map(id, listed)) == sorted(map(id, wrong))  # each exactly once
    for group in report.resources:
        assert not group.target.error  # a target not audited is shown once, not per check
        keys = [(r.label, r.items[0].result["subject"].get("id")) for r in group.resources]
        assert len(keys) == len(set(keys))  # one entry per subject
        for resource in group.resources:
            assert {(i.target.key, i.label) for i in resource.items} == {
                (group.target.key, resource.label)
            }
        ranks = [view.SEVERITIES.index(r.worst) for r in group.resources]
        assert ranks == sorted(ranks)  # worst first
    assert [t.name for t in report.not_audited] == [t["name"] for t in doc["targets"] if t["error"]]


def test_controls_fold_checks_with_no_subject_and_count_failing_subjects():
    report = view.build(fixture_document())
    for control in report.controls:
        both = control.assessed + control.unassessed
        assert sorted(both, key=control.checks.index) == control.checks
        assert all(not sum(c.counts.values()) for c in control.unassessed)
        failing = {
            (i.target.key, i.label)
            for c in control.checks
            for f in c.findings
            if f.status == "fail"
            for i in f.items
        }
        assert control.failing_subjects == len(failing)
    assert any(c.unassessed for c in report.controls)  # the fixture has no scan target
    assert [c.id for c in report.status_controls] == [
        c.id for s in report.sections for c in s.controls
    ]


def test_trends_per_section_and_severity_come_from_the_stored_history():
    doc = fixture_document()
    report = view.build(doc)
    by_section, by_severity = report.trends
    assert by_section.percent and not by_severity.percent
    assert len(by_section.times) == len(report.history) == 4
    host = next(s for s in by_section.series if s.name == view.GUIDE_SECTIONS["host-os"])
    now = doc["score"]["by_section"]["host-os"]["value"]
    assert host.values == [None, 35.0, 40.0, now]  # the oldest run predates these figures
    critical = next(s for s in by_severity.series if s.name == "critical")
    counts = doc["score"]["by_severity"]["critical"]
    assert critical.values == [None, 8, 7, counts.get("fail", 0) + counts.get("error", 0)]
    assert view.build({**doc, "history": []}).trends == []
