"""JSON: the canonical document, valid against the schema published in docs/."""

from __future__ import annotations

import copy
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
    doc = copy.deepcopy(fixture_document())  # built once per process: not to be changed
    observed = doc["results"][0]["observed"]
    observed["inode"] = 2**70  # beyond 64 bits: orjson refuses it, the stdlib writes it
    observed["by_port"] = {22: "ssh"}  # a non-string key, written as JSON writes it
    rendered = json.loads(JsonReporter().render(doc))
    assert rendered["results"][0]["observed"]["inode"] == 2**70
    assert rendered["results"][0]["observed"]["by_port"] == {"22": "ssh"}


def test_evidence_held_as_its_json_text_is_written_as_that_text():
    """A distributed run keeps workers' fact data undecoded (FactJson): the report holds the
    same evidence as if it had been decoded, on the fast encoder and on the stdlib's."""
    from auditor.facts import canonical_json
    from auditor.model import FactJson

    doc = copy.deepcopy(fixture_document())
    expected = json.loads(json.dumps(doc))
    doc["evidence"] = {sha: FactJson(canonical_json(data)) for sha, data in doc["evidence"].items()}
    assert doc["evidence"]
    assert json.loads(JsonReporter().render(doc)) == expected
    doc["results"][0]["observed"]["inode"] = 2**70  # the stdlib encoder's path
    expected["results"][0]["observed"]["inode"] = 2**70
    assert json.loads(JsonReporter().render(doc)) == expected


def test_every_format_reads_evidence_held_as_json_text_as_if_decoded():
    """The HTML's excerpts, OSCAL's resources and the rest: byte for byte the same."""
    from auditor.facts import canonical_json
    from auditor.model import FactJson
    from auditor.reporters import FORMATS, reporter_for

    plain = fixture_document()
    held = json.loads(json.dumps(plain))
    held["evidence"] = {sha: FactJson(canonical_json(d)) for sha, d in held["evidence"].items()}
    for fmt in sorted(set(FORMATS) - {"pdf", "json"}):  # the PDF is the HTML's, timestamped
        assert reporter_for(fmt).render(held) == reporter_for(fmt).render(plain), fmt


def test_the_report_written_a_piece_at_a_time_is_the_encoded_document():
    """write_json (what `--report json:` uses) writes results a thousand at a time and the
    evidence one piece at a time: the same document as encode() gives at once."""
    import io

    from auditor.document import RESULTS_PER_PIECE, encode, write_json

    for doc in (fixture_document(), hostile_document(), {**fixture_document(), "results": []}):
        written = io.BytesIO()
        write_json(doc, written)
        assert json.loads(written.getvalue()) == json.loads(encode(doc))
        assert written.getvalue().endswith(b"}\n")
    assert len(fixture_document()["results"]) > 3 * RESULTS_PER_PIECE  # several pieces
