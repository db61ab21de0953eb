"""trivy://FILE and grype://FILE: a vulnerability scanner's JSON report, read as a target.

No vulnerability database can be downloaded here, and users already run scanners: auditor
imports their findings as evidence about images and judges them with its own thresholds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from auditor.errors import TargetError
from auditor.model import TargetKind
from auditor.targets.base import Target

MAX_REPORT_BYTES = 200 * 1024 * 1024


class ScanReportTarget(Target):
    """One scanner report file; `tool` is the URL scheme (trivy or grype)."""

    kind = TargetKind.SCAN

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        self.tool, _, location = spec.url.partition("://")
        self.path = Path(location).expanduser()
        self.document: Any = None

    def connect(self) -> None:
        try:
            size = self.path.stat().st_size
        except OSError as exc:
            reason = f"cannot read {self.tool} report {self.path}: {exc.strerror}"
            raise TargetError(reason) from exc
        if size > MAX_REPORT_BYTES:
            raise TargetError(f"{self.path} is larger than {MAX_REPORT_BYTES // 2**20} MB")
        try:
            self.document = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise TargetError(f"cannot read {self.tool} report {self.path}: {exc}") from exc
        except json.JSONDecodeError as exc:
            raise TargetError(
                f"{self.path}:{exc.lineno}: not a {self.tool} JSON report ({exc.msg})"
            ) from exc

    def close(self) -> None:
        self.document = None
