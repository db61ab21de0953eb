"""Validators for the official output schemas in tests/data/schemas (offline copies).

OSCAL's schemas use `\\p{L}` in patterns, which Python's `re` cannot compile: the validator
gets a `pattern` keyword backed by the `regex` module (see tests/data/schemas/README.md).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import regex

SCHEMAS = Path(__file__).resolve().parent / "data" / "schemas"


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    if isinstance(instance, str) and not regex.search(pattern, instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


_OscalValidator = jsonschema.validators.extend(jsonschema.Draft7Validator, {"pattern": _pattern})


@cache
def oscal_validator(kind: str) -> Any:
    """kind: catalog, profile or assessment-results."""
    schema = json.loads((SCHEMAS / "oscal" / f"oscal_{kind}_schema.json").read_text())
    return _OscalValidator(schema, format_checker=None)


def oscal_errors(kind: str, document: Any) -> list[str]:
    return [
        f"{list(e.absolute_path)}: {e.message}" for e in oscal_validator(kind).iter_errors(document)
    ][:20]
