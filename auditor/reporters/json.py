"""JSON: the canonical document itself."""

from __future__ import annotations

from typing import Any

from auditor.document import dumps


class JsonReporter:
    def render(self, document: dict[str, Any]) -> str:
        return dumps(document)
