"""SARIF 2.1.0: valid against the OASIS schema; rules are checks, results failing subjects."""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path

import jsonschema
import pytest
from report_docs import fixture_document

from auditor.reporters.sarif import SarifReporter

SCHEMA = Path(__file__).resolve().parents[1] / "data" / "schemas" / "sarif-schema-2.1.0.json"


def validate(sarif):
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker())
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(sarif)]
    assert errors == []


@pytest.fixture(scope="module")
def sarif():
    return json.loads(SarifReporter().render(fixture_document()))


def test_valid_sarif(sarif):
    validate(sarif)
    assert sarif["version"] == "2.1.0"


def test_rules_are_every_check_with_help_and_severity(sarif):
    doc = fixture_document()
    rules = sarif["runs"][0]["tool"]["driver"]["rules"]
    checks = [k for c in doc["controls"] for k in c["checks"]]
    assert [r["id"] for r in rules] == [k["id"] for k in checks]
    for rule, check in zip(rules, checks, strict=True):
        assert rule["help"]["text"].startswith(check["remediation"])
        assert float(rule["properties"]["security-severity"]) >= 0
        assert rule["relationships"][0]["target"]["toolComponent"]["name"] == "NIST SP 800-190"


def test_results_are_failing_waived_and_unevaluable_subjects(sarif):
    doc = fixture_document()
    checks = {k["id"] for c in doc["controls"] for k in c["checks"]}
    wanted = Counter(
        r["status"]
        for r in doc["results"]
        if r["status"] in ("fail", "waived", "error") and r["check_id"] in checks
    )
    results = sarif["runs"][0]["results"]
    got = Counter(r["properties"]["status"] for r in results)
    assert got == wanted
    rules = sarif["runs"][0]["tool"]["driver"]["rules"]
    for result in results:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["kind"] == ("review" if result["properties"]["status"] == "error" else "fail")
    waived = [r for r in results if r["properties"]["status"] == "waived"]
    assert waived[0]["suppressions"][0]["status"] == "accepted"
    assert sarif["runs"][0]["invocations"][0]["toolExecutionNotifications"]  # unreachable


def test_snapshot_subjects_point_at_file_and_line():
    doc = copy.deepcopy(fixture_document())
    result = next(r for r in doc["results"] if r["status"] == "fail")
    result["subject"]["location"] = "manifests/app deploy.yaml:17"
    sarif = json.loads(SarifReporter().render(doc))
    validate(sarif)
    located = [r for r in sarif["runs"][0]["results"] if "physicalLocation" in r["locations"][0]]
    physical = located[0]["locations"][0]["physicalLocation"]
    assert physical == {
        "artifactLocation": {"uri": "manifests/app%20deploy.yaml"},
        "region": {"startLine": 17},
    }
    logical = located[0]["locations"][0]["logicalLocations"][0]
    assert logical["fullyQualifiedName"].startswith(result["target"] + "/")
