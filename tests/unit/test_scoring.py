"""The score formula of DESIGN.md, exactly."""

from auditor.model import Result, Severity, Status, Subject
from auditor.scoring import grade, score


def result(check, status, severity=Severity.HIGH, target="t1", control="4.5.1", waiver=None):
    return Result(
        check_id=check,
        control_id=control,
        title=check,
        severity=severity,
        target=target,
        subject=Subject("host", target),
        status=status,
        message="",
        waiver=waiver,
    )


def test_weighted_mean_of_check_ratios():
    results = [
        # critical check: 1 of 2 subjects pass -> ratio 0.5, weight 10
        result("a", Status.PASS, Severity.CRITICAL),
        result("a", Status.FAIL, Severity.CRITICAL),
        # low check: passes -> ratio 1.0, weight 1
        result("b", Status.PASS, Severity.LOW),
    ]
    card = score(results, {"4.5.1": "host-os"})
    assert card.overall.value == round(100 * (10 * 0.5 + 1 * 1.0) / 11, 1) == 54.5
    assert card.overall.grade == "F"
    assert card.by_section["host-os"].value == 54.5


def test_skip_manual_waived_and_errors_are_left_out_of_the_ratio_errors_lower_coverage():
    results = [
        result("a", Status.PASS),
        result("a", Status.FAIL),
        result("a", Status.SKIP),
        result("a", Status.WAIVED),
        result("a", Status.ERROR),
    ]
    card = score(results, {})
    assert card.overall.value == 50.0  # 1 pass / (1 pass + 1 fail): the error is not counted
    # coverage: 4 of 5 subjects evaluated (the error is not)
    assert card.overall.coverage == 80.0
    assert card.overall.counts == {"pass": 1, "fail": 1, "skip": 1, "waived": 1, "error": 1}


def test_check_without_evaluable_subject_does_not_count():
    results = [result("a", Status.PASS, Severity.LOW), result("b", Status.SKIP, Severity.CRITICAL)]
    assert score(results, {}).overall.value == 100.0


def test_unanswered_manual_lowers_coverage_not_score():
    results = [result("a", Status.PASS), result("m", Status.MANUAL, target="organisation")]
    card = score(results, {})
    assert card.overall.value == 100.0
    assert card.overall.coverage == 50.0


def test_info_weighs_nothing_and_nothing_scored_is_none():
    assert score([result("i", Status.FAIL, Severity.INFO)], {}).overall.value is None
    assert score([], {}).overall.value is None


def test_scores_per_target():
    results = [result("a", Status.PASS, target="t1"), result("a", Status.FAIL, target="t2")]
    card = score(results, {})
    assert card.by_target["t1"].value == 100.0
    assert card.by_target["t2"].value == 0.0
    assert card.overall.value == 50.0


def test_grades():
    assert [grade(v) for v in (95, 90, 85, 75, 65, 10, None)] == [
        "A",
        "A",
        "B",
        "C",
        "D",
        "F",
        None,
    ]


def test_a_target_that_could_not_be_audited_has_no_score_and_lowers_coverage_only():
    """Issue 16: one unreachable host pulled a fleet from 39.8 to 25.5."""
    good = [result("a", Status.PASS), result("b", Status.FAIL, Severity.LOW)]
    down = [result("a", Status.ERROR, target="t2"), result("b", Status.ERROR, Severity.LOW, "t2")]
    alone, fleet = score(good, {}), score(good + down, {})
    assert fleet.overall.value == alone.overall.value == round(100 * 6 / 7, 1)
    assert fleet.by_target["t2"].value is None and fleet.by_target["t2"].grade is None
    assert fleet.by_target["t2"].coverage == 0.0
    assert alone.overall.coverage == 100.0 and fleet.overall.coverage == 50.0


def test_the_formula_text_says_errors_are_left_out():
    from auditor.scoring import FORMULA

    assert "passed / (passed + failed)" in FORMULA
    assert "Errored" in FORMULA and "not audited: reason" in FORMULA
