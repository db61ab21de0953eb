"""JSON: the canonical document itself."""

from __future__ import annotations

from typing import Any, BinaryIO

from auditor.document import encode, write_json


class JsonReporter:
    def render(self, document: dict[str, Any]) -> bytes:
        return encode(document)

    def write_to(self, document: dict[str, Any], out: BinaryIO) -> None:
        write_json(document, out)
