"""The canonical JSON that evidence hashes are taken over."""

import json

from auditor.facts import canonical_json, sha256_of


def _stdlib(data):
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def test_canonical_json_is_the_text_earlier_versions_hashed():
    data = {
        "z": [1, -2, 0.5, 1e16, True, None, ""],
        "a": {"é": '\x00\x7f\u2028"\\/', "b": {"c": []}},
        "when": object.__new__(type("Stamp", (), {"__str__": lambda self: "2026-11-22"})),
    }
    assert canonical_json(data) == _stdlib(data)
    assert len(sha256_of(data)) == 64 and sha256_of(data) == sha256_of(dict(reversed(data.items())))


def test_what_the_fast_encoder_refuses_is_still_hashed():
    data = {"inode": 2**70, "n": 1}
    assert canonical_json(data) == _stdlib(data)
