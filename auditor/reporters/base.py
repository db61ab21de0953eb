"""What a reporter is: a view of the canonical results document, computing nothing."""

from __future__ import annotations

from typing import Any, Protocol


class Reporter(Protocol):
    """Renders the canonical document (auditor.document) in one format."""

    def render(self, document: dict[str, Any]) -> str | bytes: ...
