"""OSCAL assessment results: valid against the official 1.1.3 schema, every control present,
observations linked to their evidence, which carries its verifiable sha256."""

from __future__ import annotations

import base64
import hashlib
import json
from collections import Counter

import pytest
from report_docs import fixture_document
from schemas import oscal_errors

from auditor.reporters.oscal import OscalReporter, oscal_control_id


@pytest.fixture(scope="module")
def ar():
    return json.loads(OscalReporter().render(fixture_document()))["assessment-results"]


def test_valid_against_the_official_schema(ar):
    assert oscal_errors("assessment-results", {"assessment-results": ar}) == []
    assert ar["metadata"]["oscal-version"] == "1.1.3"


def test_control_id_mapping():
    assert oscal_control_id("nist-800-190", "4.5.1") == "nist-800-190-4.5.1"
    assert oscal_control_id("nist-800-190", "4.6") == "nist-800-190-4.6"


def test_every_control_is_reviewed_and_has_a_finding(ar):
    doc = fixture_document()
    result = ar["results"][0]
    wanted = [oscal_control_id("nist-800-190", c["id"]) for c in doc["controls"]]
    included = result["reviewed-controls"]["control-selections"][0]["include-controls"]
    assert [c["control-id"] for c in included] == wanted
    targets = [f["target"]["target-id"] for f in result["findings"]]
    assert targets == [f"{c}_obj" for c in wanted]


def test_controls_that_could_not_be_evaluated_say_so(ar):
    findings = ar["results"][0]["findings"]
    evaluations = Counter(
        next(p["value"] for p in f["props"] if p["name"] == "evaluation") for f in findings
    )
    assert evaluations["evaluated"] > 0
    assert evaluations["not-evaluated"] + evaluations["partially-evaluated"] > 0
    for finding in findings:
        evaluation = next(p["value"] for p in finding["props"] if p["name"] == "evaluation")
        state = finding["target"]["status"]["state"]
        if evaluation in ("not-evaluated", "partially-evaluated", "waived"):
            assert state == "not-satisfied"
            assert finding["target"]["status"]["reason"] == "other"


def test_a_target_not_audited_keeps_its_controls_from_reading_satisfied():
    """Its error rows are folded out of `results`; the scored counts still carry them, so a
    control whose remaining results all pass is not `satisfied`."""
    doc = fixture_document()
    (down,) = doc["not_audited"]
    errored = {
        control
        for control, score in doc["score"]["by_control"].items()
        if score["counts"].get("error")
    }
    control = next(c for c in sorted(errored) if any(r["control_id"] == c for r in doc["results"]))
    for result in doc["results"]:  # every result left for the control passes
        if result["control_id"] == control:
            result["status"] = "pass"
    findings = json.loads(OscalReporter().render(doc))["assessment-results"]["results"][0]
    (finding,) = [
        f for f in findings["findings"]
        if f["target"]["target-id"] == f"{oscal_control_id('nist-800-190', control)}_obj"
    ]  # fmt: skip
    assert finding["target"]["status"]["state"] == "not-satisfied"


def test_observations_link_evidence_by_sha256(ar):
    doc = fixture_document()
    resources = {r["uuid"]: r for r in ar["back-matter"]["resources"]}
    observations = ar["results"][0]["observations"]
    linked = 0
    for observation in observations:
        for evidence in observation.get("relevant-evidence", []):
            resource = resources[evidence["href"].removeprefix("#")]
            digest = next(p["value"] for p in evidence["props"] if p["name"] == "sha256")
            data = base64.b64decode(resource["base64"]["value"])
            assert hashlib.sha256(data).hexdigest() == digest
            assert json.loads(data) == doc["evidence"][digest]
            linked += 1
    assert linked > 0
    related = {o["observation-uuid"] for f in ar["results"][0]["findings"]
               for o in f.get("related-observations", [])}  # fmt: skip
    assert related == {o["uuid"] for o in observations}


def test_same_document_same_output():
    doc = fixture_document()
    assert OscalReporter().render(doc) == OscalReporter().render(doc)
