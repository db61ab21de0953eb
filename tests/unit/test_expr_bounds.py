"""CEL evaluation is bounded: regexes are checked at load and cannot backtrack; a check that
runs too long is an error of its own."""

from __future__ import annotations

import json
import time

import pytest

from auditor import expr
from auditor.errors import ProfileError
from auditor.expr import EvaluationError, ExpressionError, Scope, compile_expression
from auditor.profiles import load_profile

# (a+)+$ on a run of a's and one other character: Python's `re` takes exponential time
# (37 minutes and counting in the report that found it).
CATASTROPHIC = "(a+)+$"
HOSTILE_TEXT = "a" * 50_000 + "!"


def scope_with(subject: dict) -> Scope:
    scope = Scope({"vars": {}, "target": {}})
    scope.enter(subject)
    return scope


@pytest.mark.parametrize(
    "source",
    [
        f"regex_find(subject.a, '{CATASTROPHIC}') == null",
        f"subject.a.matches('{CATASTROPHIC}')",
        "regex_find(subject.a, subject.p) == null",  # a pattern from the data itself
    ],
)
def test_a_catastrophic_regex_runs_in_linear_time(source):
    scope = scope_with({"a": HOSTILE_TEXT, "p": CATASTROPHIC})
    started = time.monotonic()
    value = scope.evaluate(compile_expression(source))
    assert time.monotonic() - started < 0.5
    assert value is ("regex_find" in source)  # no match: the text ends in "!"


def test_regex_find_still_finds():
    scope = scope_with({"image": "registry.local/nginx:1.25"})
    found = scope.evaluate(compile_expression("regex_find(subject.image, ':[^/:]+$')"))
    assert found == ":1.25"


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("regex_find(subject.a, '(') != null", ["regex_find()", "invalid regex", "missing )"]),
        ("regex_find(lower(subject.a), 'x[') != null", ["regex_find()", "missing ]"]),
        ("subject.a.matches('[a-')", ["matches()", "invalid regex", "unclosed character class"]),
        ("subject.a.matches('(?<=x)y')", ["matches()", "look-around"]),
    ],
)
def test_an_invalid_regex_literal_is_a_compile_error(source, words, capfd):
    with pytest.raises(ExpressionError) as caught:
        compile_expression(source)
    for word in words:
        assert word in str(caught.value)
    assert capfd.readouterr().err == ""  # RE2 prints nothing of its own


def test_a_pattern_from_data_that_is_invalid_is_an_evaluation_error():
    scope = scope_with({"a": "x", "p": "("})
    with pytest.raises(EvaluationError, match="invalid regex"):
        scope.evaluate(compile_expression("regex_find(subject.a, subject.p) == null"))


def test_an_invalid_regex_in_a_profile_names_file_line_and_check(tmp_path):
    (tmp_path / "profile.yaml").write_text(
        'id: mini\ntitle: Mini\nversion: "1"\ninclude: [host.yaml]\n'
    )
    (tmp_path / "host.yaml").write_text(
        "section: {id: host-os, title: Host}\n"
        "controls:\n"
        '  - id: "4.5.1"\n'
        "    title: Attack surface\n"
        "    text: Keep it small.\n"
        "    coverage: automated\n"
        "    checks:\n"
        "      - id: host.os.pattern\n"
        "        title: OS id matches\n"
        "        severity: low\n"
        "        target: host\n"
        "        assert: \"regex_find(facts.host.os.id, 'deb(ian') != null\"\n"
        "        remediation: Use an allowed OS.\n"
    )
    with pytest.raises(ProfileError) as caught:
        load_profile(str(tmp_path))
    error = caught.value
    assert (error.line, error.item) == (12, "host.os.pattern")
    assert str(tmp_path / "host.yaml") in str(error) and "invalid regex" in str(error)


def test_a_check_past_its_budget_is_stopped_at_the_next_helper_call(monkeypatch):
    monkeypatch.setattr(expr.budget, "EVALUATION_BUDGET", 0.3)
    scope = scope_with({"l": list(range(3000))})  # 9 million helper calls: minutes
    started = time.monotonic()
    with pytest.raises(EvaluationError, match=r"stopped after the 0\.3s evaluation budget"):
        scope.evaluate(compile_expression("subject.l.all(x, subject.l.all(y, lower('A') == 'a'))"))
    assert time.monotonic() - started < 1.5


def test_a_check_past_its_budget_without_helpers_is_an_error_once_it_ends(monkeypatch):
    monkeypatch.setattr(expr.budget, "EVALUATION_BUDGET", 0.05)
    scope = scope_with({"l": list(range(1500))})
    with pytest.raises(EvaluationError, match=r"over the 0\.05s evaluation budget"):
        scope.evaluate(compile_expression("subject.l.all(x, subject.l.all(y, x + y >= 0))"))
    # the next evaluation has a budget of its own
    assert scope.evaluate(compile_expression("size(subject.l) == 1500")) is True


def test_a_check_past_its_budget_is_an_error_result_of_that_check_alone(
    auditor_cli, tmp_path, monkeypatch
):
    """A real local audit with two checks: the pathological one is `error` with the reason,
    the other is judged as ever."""
    monkeypatch.setattr(expr.budget, "EVALUATION_BUDGET", 0.2)
    (tmp_path / "profile.yaml").write_text(
        'id: mini\ntitle: Mini\nversion: "1"\ninclude: [host.yaml]\n'
    )
    (tmp_path / "host.yaml").write_text(
        "section: {id: host-os, title: Host}\n"
        "controls:\n"
        '  - id: "4.5.1"\n'
        "    title: Attack surface\n"
        "    text: Keep it small.\n"
        "    coverage: automated\n"
        "    checks:\n"
        "      - id: host.slow\n"
        "        title: Pathological\n"
        "        severity: low\n"
        "        target: host\n"
        '        assert: "[1,2,3,4,5,6,7,8,9,10].all(a, [1,2,3,4,5,6,7,8,9,10].all(b,'
        " [1,2,3,4,5,6,7,8,9,10].all(c, [1,2,3,4,5,6,7,8,9,10].all(d,"
        " [1,2,3,4,5,6,7,8,9,10].all(e, lower(facts.host.os.id) != 'x')))))\"\n"
        "        remediation: None.\n"
        "      - id: host.fine\n"
        "        title: OS known\n"
        "        severity: low\n"
        "        target: host\n"
        "        assert: \"facts.host.os.id != ''\"\n"
        "        remediation: None.\n"
    )
    report = tmp_path / "results.json"
    done = auditor_cli(
        "run", "-q", "--no-store", "--profile", str(tmp_path), "--target", "local://",
        "--workers", "0", "--report", f"json:{report}",
    )  # fmt: skip
    assert done.code == 0, done.err
    results = {r["check_id"]: r for r in json.loads(report.read_text())["results"]}
    assert results["host.slow"]["status"] == "error"
    assert "0.2s evaluation budget" in results["host.slow"]["message"]
    assert results["host.fine"]["status"] == "pass"
