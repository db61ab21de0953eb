"""Every check proves both verdicts: a passing and a failing fixture per check (STYLE rule 3).

tests/fixtures/checks/<check-id>/pass-*.json and fail-*.json hold
{"description": ..., "facts": {"<fact name>": <data>}, "vars": {optional overrides}}.
A pass fixture must give only pass (or skip) results and at least one pass; a fail fixture
at least one fail and no error. New fixture files need no new test code.
"""

import dataclasses
import json
from pathlib import Path

import pytest

from auditor.engine import evaluate
from auditor.facts import new_fact
from auditor.model import Status, TargetRecord
from auditor.profiles import available_profiles, load_profile

FIXTURES = Path(__file__).parents[1] / "fixtures" / "checks"
PROFILES = {d.name: load_profile(str(d)) for d in available_profiles()}
CHECKS = {c.id: (p, c) for p in PROFILES.values() for c in p.checks}


def fixture_files():
    return sorted(FIXTURES.glob("*/*.json"))


@pytest.mark.parametrize("check_id", sorted(CHECKS))
def test_every_check_has_a_passing_and_a_failing_fixture(check_id):
    folder = FIXTURES / check_id
    assert list(folder.glob("pass-*.json")), (
        f"{check_id}: no tests/fixtures/checks/{check_id}/pass-*.json"
    )
    assert list(folder.glob("fail-*.json")), (
        f"{check_id}: no tests/fixtures/checks/{check_id}/fail-*.json"
    )


def test_no_fixture_folder_without_a_check():
    orphans = sorted({p.parent.name for p in fixture_files()} - set(CHECKS))
    assert not orphans


@pytest.mark.parametrize("path", fixture_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_fixture_verdict(path):
    profile, check = CHECKS[path.parent.name]
    data = json.loads(path.read_text())
    facts = tuple(
        new_fact(name, "fixture", value, source="fixture") for name, value in data["facts"].items()
    )
    record = TargetRecord("fixture", "fixture://", check.check.target, "", "", facts=facts)
    only = dataclasses.replace(profile, checks=(check,))
    results = evaluate(only, record, {**profile.variables, **data.get("vars", {})})
    statuses = [r.status for r in results]
    detail = [(r.status, r.subject.name, r.message) for r in results]
    if path.name.startswith("pass-"):
        assert Status.PASS in statuses, detail
        assert set(statuses) <= {Status.PASS, Status.SKIP}, detail
    else:
        assert Status.FAIL in statuses, detail
        assert Status.ERROR not in statuses, detail
