"""JSON: the canonical document itself."""

from __future__ import annotations

from typing import Any

from auditor.document import encode


class JsonReporter:
    def render(self, document: dict[str, Any]) -> bytes:
        return encode(document)
