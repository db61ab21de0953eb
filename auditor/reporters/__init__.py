"""Report formats: name -> reporter, imported on first use."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditor.errors import InputError, ReportError
from auditor.reporters.base import Reporter, StreamingReporter

FORMATS: dict[str, str] = {
    "json": "auditor.reporters.json:JsonReporter",
    "terminal": "auditor.reporters.terminal:TerminalReporter",
    "html": "auditor.reporters.html:HtmlReporter",
    "pdf": "auditor.reporters.pdf:PdfReporter",
    "junit": "auditor.reporters.junit:JunitReporter",
    "sarif": "auditor.reporters.sarif:SarifReporter",
    "oscal": "auditor.reporters.oscal:OscalReporter",
    "csv": "auditor.reporters.csv:CsvReporter",
    "markdown": "auditor.reporters.markdown:MarkdownReporter",
}


@dataclass(frozen=True)
class ReportRequest:
    """One `--report FORMAT:PATH`; PATH '-' is standard output."""

    format: str
    path: str

    @classmethod
    def parse(cls, text: str) -> ReportRequest:
        fmt, sep, path = text.partition(":")
        if not sep or not path:
            raise InputError(f"bad --report {text!r}: expected FORMAT:PATH, e.g. json:-")
        if fmt not in FORMATS:
            raise InputError(f"unknown report format {fmt!r} (known: {', '.join(FORMATS)})")
        return cls(fmt, path)


def parse_requests(texts: Iterable[str]) -> list[ReportRequest]:
    """Every `--report`, refusing two to one destination: two documents on stdout (or in one
    file) would be concatenated into something no consumer can read."""
    requests = [ReportRequest.parse(text) for text in texts]
    seen: dict[str, ReportRequest] = {}
    for request in requests:
        key = "-" if request.path == "-" else str(Path(request.path).resolve())
        if key in seen:
            where = "stdout" if key == "-" else request.path
            raise InputError(
                f"--report {seen[key].format}:{request.path} and --report "
                f"{request.format}:{request.path} both write to {where}: give one a file"
            )
        seen[key] = request
    return requests


def reporter_for(fmt: str) -> Reporter:
    module_name, _, attr = FORMATS[fmt].partition(":")
    reporter: Reporter = getattr(importlib.import_module(module_name), attr)()
    return reporter


def write(request: ReportRequest, document: dict[str, Any]) -> None:
    """Render `document` in the requested format to its destination."""
    reporter = reporter_for(request.format)
    if request.path == "-":
        if isinstance(reporter, StreamingReporter):
            reporter.write_to(document, sys.stdout.buffer)
            sys.stdout.buffer.flush()
            return
        content = reporter.render(document)
        if isinstance(content, bytes):
            sys.stdout.buffer.write(content)
            sys.stdout.buffer.flush()
        else:
            sys.stdout.write(content)
            sys.stdout.flush()
        return
    path = Path(request.path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(reporter, StreamingReporter):
            with path.open("wb") as out:
                reporter.write_to(document, out)
            return
        content = reporter.render(document)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    except OSError as exc:
        raise ReportError(
            f"cannot write {request.format} report to {path}: {exc.strerror}"
        ) from exc
