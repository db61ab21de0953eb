"""What a reporter is: a view of the canonical results document, computing nothing."""

from __future__ import annotations

from typing import Any, BinaryIO, Protocol, runtime_checkable


class Reporter(Protocol):
    """Renders the canonical document (auditor.document) in one format."""

    def render(self, document: dict[str, Any]) -> str | bytes: ...


@runtime_checkable
class StreamingReporter(Reporter, Protocol):
    """A reporter that can also write its report piece by piece (a report of a large run,
    whose evidence the run holds on disk)."""

    def write_to(self, document: dict[str, Any], out: BinaryIO) -> None: ...
