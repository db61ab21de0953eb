"""Drift between runs, regression notices and Prometheus metrics, from results documents."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from auditor import metrics, notify
from auditor.drift import category, compare, summarise
from auditor.facts import sha256_of


def res(check: str, status: str, subject: str = "h1", target: str = "h1", sev: str = "high"):
    return {
        "check_id": check, "control_id": "4.5.1", "title": check, "severity": sev,
        "target": target, "subject": {"kind": "host", "name": subject, "id": None,
                                      "location": None},
        "status": status, "message": f"{check} is {status}",
    }  # fmt: skip


def doc(results: list[dict[str, Any]], value: float | None, facts: dict[str, Any]) -> dict:
    evidence = {sha256_of(data): data for data in facts.values()}
    fact_list = [
        {"name": name, "sha256": sha256_of(data), "error": None} for name, data in facts.items()
    ]
    return {
        "run": {"id": f"run-{value}", "started_at": "2026-01-01T00:00:00Z",
                "finished_at": "2026-01-01T00:01:00Z", "complete": True,
                "profile": {"id": "p", "version": "1"}, "tool_version": "0.1.0"},
        "score": {
            "overall": {"value": value, "grade": None, "coverage": 90.0},
            "by_target": {"h1": {"value": value, "coverage": 90.0}},
            "by_control": {"4.5.1": {"value": value, "coverage": 90.0}},
        },
        "targets": [{"name": "h1", "kind": "host", "error": None, "facts": fact_list}],
        "results": results,
        "evidence": evidence,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ("pass", "fail", "new_failures"), (None, "fail", "new_failures"),
        ("skip", "error", "new_failures"), ("waived", "fail", "new_failures"),
        ("fail", "pass", "fixed"), ("error", "pass", "fixed"),
        ("fail", "error", "still_failing"), ("fail", "fail", "still_failing"),
        (None, "pass", "newly_applicable"), ("skip", "manual", "newly_applicable"),
        ("pass", "skip", "no_longer_applicable"), ("fail", None, "no_longer_applicable"),
        ("fail", "waived", "changed"), ("manual", "pass", "changed"),
        ("pass", "pass", None), ("skip", None, None),
    ],
)  # fmt: skip
def test_every_transition_has_one_category(before, after, expected):
    assert category(before, after) == expected


def test_compare_finds_failures_fixes_evidence_and_deltas():
    before = doc(
        [res("a", "pass"), res("b", "fail"), res("c", "fail"), res("d", "skip")],
        80.0,
        {"host.file_modes": [{"path": "/etc/x", "mode": "0644"},
                             {"path": "/etc/y", "mode": "0600"}],
         "host.os": {"id": "debian", "version": "12"}},
    )  # fmt: skip
    after = doc(
        [res("a", "fail"), res("b", "pass"), res("c", "error"), res("d", "pass")],
        60.0,
        {"host.file_modes": [{"path": "/etc/x", "mode": "0666"},
                             {"path": "/etc/z", "mode": "0600"}],
         "host.os": {"id": "debian", "version": "12"}},
    )  # fmt: skip
    diff = compare(before, after)
    assert [e["check_id"] for e in diff["new_failures"]] == ["a"]
    assert [e["check_id"] for e in diff["fixed"]] == ["b"]
    assert [(e["check_id"], e["a"], e["b"]) for e in diff["still_failing"]] == [
        ("c", "fail", "error")
    ]
    assert [e["check_id"] for e in diff["newly_applicable"]] == ["d"]
    assert diff["counts"]["new_failures"] == 1
    assert diff["score"] == {
        "a": 80.0, "b": 60.0, "delta": -20.0,
        "coverage_a": 90.0, "coverage_b": 90.0, "coverage_delta": 0.0,
    }  # fmt: skip
    assert diff["by_target"][0]["delta"] == -20.0
    assert diff["by_control"][0]["control"] == "4.5.1"
    (change,) = diff["evidence"]  # host.os did not change
    assert change["fact"] == "host.file_modes"
    assert change["summary"] == {"added": ["/etc/z"], "removed": ["/etc/y"], "changed": ["/etc/x"]}


def test_summaries_of_dicts_and_anonymous_lists():
    assert summarise({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}) == {
        "added": ["c"], "removed": [], "changed": ["b"],
    }  # fmt: skip
    assert summarise(["x", "y"], ["x", "z", "w"]) == {
        "added": ["2 item(s)"], "removed": ["1 item(s)"], "changed": [],
    }  # fmt: skip
    assert summarise("a", "b")["changed"] == ["(value)"]


def test_regression_on_score_drop_or_new_critical_failure():
    before = doc([res("a", "pass", sev="critical"), res("b", "fail")], 80.0, {})
    same = copy.deepcopy(before)
    assert notify.regression(None, same) is None  # nothing to compare with
    assert notify.regression(before, same) is None
    worse = doc([res("a", "fail", sev="critical"), res("b", "fail")], 80.0, {})
    notice = notify.regression(before, worse)
    assert notice is not None
    assert notice["reasons"] == ["new_critical_failures"]
    assert [e["check_id"] for e in notice["new_critical_failures"]] == ["a"]
    dropped = doc([res("a", "pass", sev="critical"), res("b", "fail")], 70.5, {})
    notice = notify.regression(before, dropped)
    assert notice is not None and notice["reasons"] == ["score_drop"]
    assert notice["score"] == {"previous": 80.0, "current": 70.5, "delta": -9.5}
    better = doc([res("a", "pass", sev="critical"), res("b", "pass")], 95.0, {})
    assert notify.regression(before, better) is None


def test_webhook_host_only_in_messages_and_scheme_checked():
    assert notify.where("https://hooks.example.com/services/T0/B0/secret") == (
        "https://hooks.example.com"
    )
    with pytest.raises(notify.NotifyError, match="http:// or https://"):
        notify.post("file:///etc/passwd", {})


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def full_doc() -> dict[str, Any]:
    d = doc([res("a", "pass"), res("b", "fail", sev="critical"), res("c", "fail")], 73.4, {})
    d["run"]["finished_at"] = "2026-01-01T00:01:30Z"
    d["targets"].append({"name": 'we"ird\nname', "kind": "host", "error": "unreachable",
                         "facts": []})  # fmt: skip
    d["waivers"] = {"applied": [{}], "expiring": [], "expired": [{}, {}], "not_started": [],
                    "unmatched": []}  # fmt: skip
    d["not_audited"] = [{"target": 'we"ird\nname', "kind": "host", "reason": "unreachable",
                         "checks": 3, "checks_by_severity": {"high": 2, "low": 1}}]  # fmt: skip
    return d


def test_prometheus_text_has_scores_coverage_and_counts():
    found = samples(metrics.render(full_doc()))
    profile = ("profile", "p")
    assert found[("auditor_run_score", (profile,))] == 73.4
    assert found[("auditor_run_coverage_percent", (profile,))] == 90.0
    assert found[("auditor_run_duration_seconds", (profile,))] == 90.0
    assert found[("auditor_run_complete", (profile,))] == 1.0
    key = ("auditor_run_results", (profile, ("severity", "critical"), ("status", "fail")))
    assert found[key] == 1.0
    target = (("kind", "host"), profile, ("target", "h1"))
    assert found[("auditor_target_score", target)] == 73.4
    assert found[("auditor_target_up", target)] == 1.0
    # hostile target names are escaped, not able to break the exposition format
    weird = (("kind", "host"), profile, ("target", 'we"ird\nname'))
    assert found[("auditor_target_up", weird)] == 0.0
    # the checks of a target not audited still count as errors, by severity
    errors = ("auditor_target_results", (profile, ("severity", "high"), ("status", "error"),
                                         ("target", 'we"ird\nname')))  # fmt: skip
    assert found[errors] == 2.0
    assert found[("auditor_waivers", (profile, ("state", "expired")))] == 2.0


def test_textfile_is_replaced_atomically(tmp_path):
    path = tmp_path / "textfile" / "auditor.prom"
    metrics.write_textfile(full_doc(), path)
    first = path.stat().st_ino
    metrics.write_textfile(full_doc(), path)
    assert path.stat().st_ino != first  # a new file renamed over the old one
    assert [p.name for p in path.parent.iterdir()] == ["auditor.prom"]  # no leftovers
    assert "auditor_run_score" in path.read_text()


def test_a_target_not_audited_is_listed_once_not_as_changed_results():
    before = doc([res("a", "pass"), res("b", "fail")], 50.0, {})
    after = doc([], None, {})
    after["targets"][0]["error"] = "connection refused"
    after["not_audited"] = [{"target": "h1", "kind": "host", "reason": "connection refused",
                             "checks": 2, "checks_by_severity": {"high": 2}}]  # fmt: skip
    drift = compare(before, after)
    assert drift["targets"]["not_audited_b"] == ["h1"] and drift["targets"]["not_audited_a"] == []
    assert all(count == 0 for count in drift["counts"].values())
