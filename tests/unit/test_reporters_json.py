"""JSON: the canonical document, valid against the schema published in docs/."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
from report_docs import fixture_document, hostile_document

from auditor.reporters.json import JsonReporter

SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "results.schema.json"


def test_valid_against_the_published_schema():
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    for doc in (fixture_document(), hostile_document()):
        rendered = json.loads(JsonReporter().render(doc))
        assert [e.message for e in validator.iter_errors(rendered)][:5] == []
        assert rendered == json.loads(json.dumps(doc))


def test_values_the_fast_encoder_refuses_are_still_written():
    doc = fixture_document()
    observed = doc["results"][0]["observed"]
    observed["inode"] = 2**70  # beyond 64 bits: orjson refuses it, the stdlib writes it
    observed["by_port"] = {22: "ssh"}  # a non-string key, written as JSON writes it
    rendered = json.loads(JsonReporter().render(doc))
    assert rendered["results"][0]["observed"]["inode"] == 2**70
    assert rendered["results"][0]["observed"]["by_port"] == {"22": "ssh"}
