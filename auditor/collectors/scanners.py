"""Facts from imported vulnerability scanner reports (Trivy, Grype), one subject per image.

The reports' formats are read by auditor/scan_reports.py, which the target also uses
to refuse a file that is no such report before the run.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from auditor.facts import FactSpec, failed_fact, new_fact
from auditor.model import Fact, Subject
from auditor.scan_reports import ReportFormatError, images_of
from auditor.targets.scanreport import ScanReportTarget


def _subject(item: Mapping[str, Any]) -> Subject:
    image_id = str(item.get("image_id") or "")
    short = image_id.split(":")[-1][:12]
    name = f"{item.get('image')} ({short})" if short else str(item.get("image"))
    return Subject(kind="image", name=name, id=image_id or None)


class ScanReportCollector:
    """scan.images from the imported report."""

    facts: Mapping[str, FactSpec] = {
        "scan.images": FactSpec(
            "scan.images",
            "images of an imported scanner report with their vulnerabilities",
            subject=_subject,
        ),
    }

    def collect(
        self, target: Any, names: Collection[str], variables: Mapping[str, Any]
    ) -> dict[str, Fact]:
        assert isinstance(target, ScanReportTarget)
        source = f"{target.tool} JSON report {target.path}"
        try:
            images = images_of(target.tool, target.document)
        except ReportFormatError as exc:
            return {
                "scan.images": failed_fact(
                    "scan.images", target.name, f"{target.path}: {exc}", source=source
                )
            }
        return {"scan.images": new_fact("scan.images", target.name, images, source=source)}
