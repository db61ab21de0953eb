"""trivy://FILE and grype://FILE: a vulnerability scanner's JSON report, read as a target.

No vulnerability database can be downloaded here, and users already run scanners: auditor
imports their findings as evidence about images and judges them with its own thresholds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from auditor.errors import InputError, TargetError
from auditor.model import TargetKind
from auditor.regularfile import UnreadableFile, read_regular_file
from auditor.scan_reports import ReportFormatError, images_of
from auditor.targets.base import Target

MAX_REPORT_BYTES = 200 * 1024 * 1024


def read_report(tool: str, path: Path) -> Any:
    """The parsed JSON of a scanner report, checked to be of `tool`'s shape; InputError naming
    the file (and the line or item) when it cannot be read or is not such a report."""
    try:
        document = orjson.loads(read_regular_file(path, MAX_REPORT_BYTES))
    except UnreadableFile as exc:
        raise InputError(f"{tool} report: {exc.reason}", path=path) from exc
    except orjson.JSONDecodeError as exc:
        raise InputError(
            f"not a {tool} JSON report ({exc.msg})", path=path, line=exc.lineno
        ) from exc
    try:
        images_of(tool, document)
    except ReportFormatError as exc:
        raise InputError(f"not a {tool} JSON report: {exc}", path=path) from exc
    return document


class ScanReportTarget(Target):
    """One scanner report file; `tool` is the URL scheme (trivy or grype)."""

    kind = TargetKind.SCAN

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        self.tool = spec.address.scheme
        self.path = Path(spec.address.rest).expanduser()
        self.document: Any = None

    def connect(self) -> None:
        try:
            self.document = read_report(self.tool, self.path)
        except InputError as exc:
            raise TargetError(str(exc)) from exc

    def close(self) -> None:
        self.document = None
