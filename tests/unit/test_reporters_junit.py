"""JUnit XML: valid for both schemas CI servers use, one test case per check and subject."""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest
import xmlschema
from report_docs import fixture_document

from auditor.reporters.junit import JunitReporter

SCHEMAS = Path(__file__).resolve().parents[1] / "data" / "schemas" / "junit"


@pytest.fixture(scope="module")
def xml():
    return JunitReporter().render(fixture_document())


@pytest.mark.parametrize("schema", ["JUnit.xsd", "junit-10.xsd"])
def test_valid_against_the_ci_schemas(xml, schema):
    xmlschema.XMLSchema(str(SCHEMAS / schema)).validate(xml)


def test_one_testcase_per_check_and_subject(xml):
    doc = fixture_document()
    root = ET.fromstring(xml)
    cases = root.findall("testsuite/testcase")
    (down,) = doc["not_audited"]  # the unreachable target: one test case, not one per check
    assert len(cases) == len(doc["results"]) + 1
    statuses = Counter(r["status"] for r in doc["results"])
    assert len(root.findall("testsuite/testcase/failure")) == statuses["fail"]
    assert len(root.findall("testsuite/testcase/error")) == statuses["error"] + 1
    unreachable = next(s for s in root.findall("testsuite") if s.get("name") == down["target"])
    (case,) = unreachable.findall("testcase")
    assert case.find("error").get("message").startswith(f"not audited: {down['reason']}")
    skipped = statuses["skip"] + statuses["manual"] + statuses["waived"]
    assert len(root.findall("testsuite/testcase/skipped")) == skipped
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {t["name"] for t in doc["targets"]} | {"organisation"}
    for suite in suites.values():
        assert int(suite.get("tests")) == len(suite.findall("testcase"))


def test_failure_text_tells_how_to_fix_it(xml):
    doc = fixture_document()
    result = next(r for r in doc["results"] if r["status"] == "fail" and r["evidence"])
    root = ET.fromstring(xml)
    suite = next(s for s in root.findall("testsuite") if s.get("name") == result["target"])
    failures = [
        c.find("failure")
        for c in suite.findall("testcase")
        if c.get("classname") == result["check_id"] and c.find("failure") is not None
    ]
    texts = [f.text for f in failures if f.get("message") == result["message"]]
    assert texts, result
    assert f"remediation: {result['remediation']}" in texts[0]
    assert f"expected: {result['expected']}" in texts[0]
    assert f"sha256:{result['evidence'][0]}" in texts[0]
    assert failures[0].get("type") == result["severity"]


def test_waived_results_say_why(xml):
    root = ET.fromstring(xml)
    messages = [s.get("message") for s in root.iter("skipped")]
    assert any(
        m.startswith("waived: Break-glass access") and "expires 2027-06-30" in m for m in messages
    )


def test_unreachable_target_is_an_error_suite(xml):
    root = ET.fromstring(xml)
    suite = next(s for s in root.findall("testsuite") if s.get("name").startswith("unreachable"))
    assert int(suite.get("errors")) == int(suite.get("tests")) > 0
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert "timed out" in props["auditor.target.error"]


def test_case_identities_are_unique_with_the_file_and_line_in_the_name():
    doc = copy.deepcopy(fixture_document())
    result = next(r for r in doc["results"] if r["status"] == "fail")
    same_name_other_file = copy.deepcopy(result)
    result["subject"]["location"] = "a/web.yaml:3"
    same_name_other_file["subject"]["location"] = "b/web.yaml:3"
    printed_alike = copy.deepcopy(result)  # no location to tell them apart
    doc["results"] += [same_name_other_file, printed_alike]
    root = ET.fromstring(JunitReporter().render(doc))
    keys = [
        (suite.get("name"), case.get("classname"), case.get("name"))
        for suite in root.findall("testsuite")
        for case in suite.findall("testcase")
    ]
    not_audited = len(doc.get("not_audited", []))  # one case each, not one per check
    assert len(keys) == len(set(keys)) == len(doc["results"]) + not_audited
    names = {n for s, c, n in keys if s == result["target"] and c == result["check_id"]}
    subject = f"{result['subject']['kind']} {result['subject']['name']}"
    title = f"[{result['control_id']}] {result['title']}"
    assert f"{title} ({subject} at a/web.yaml:3)" in names
    assert f"{title} ({subject} at b/web.yaml:3)" in names
    assert f"{title} ({subject} at a/web.yaml:3) #2" in names
