"""Facts from imported vulnerability scanner reports (Trivy, Grype), one subject per image.

The pure functions `images_from_trivy` and `images_from_grype` normalise each tool's JSON
into the same shape, so one set of checks judges both:

    {"image": "nginx:1.25", "image_id": "sha256:3f2c…", "digests": ["nginx@sha256:…"],
     "os": "debian 12.5", "tool": "trivy", "scanned_at": "2026-11-20T08:00:00Z",
     "counts": {"critical": 1, "high": 3, ...},
     "vulnerabilities": [{"id": "CVE-2024-1234", "package": "libssl3",
                          "installed": "3.0.11-1~deb12u2", "fixed": "3.0.13-1~deb12u1",
                          "severity": "high", "published": "2024-01-10T00:00:00Z",
                          "url": "https://…"}]}

`fixed` is null when no fixed version exists; `published` is null when the report has no
date (Grype), and `severity` is one of critical, high, medium, low, negligible, unknown.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from typing import Any

from auditor.facts import FactSpec, failed_fact, new_fact
from auditor.model import Fact, Subject
from auditor.targets.scanreport import ScanReportTarget

SEVERITIES = ("critical", "high", "medium", "low", "negligible", "unknown")


class ReportFormatError(ValueError):
    """The JSON is not the report format of the tool it was imported as."""


def _severity(value: Any) -> str:
    text = str(value or "unknown").lower()
    return text if text in SEVERITIES else "unknown"


def _counts(vulnerabilities: list[dict[str, Any]]) -> dict[str, int]:
    found = Counter(v["severity"] for v in vulnerabilities)
    return {severity: found.get(severity, 0) for severity in SEVERITIES}


def _trivy_image(report: Mapping[str, Any]) -> dict[str, Any]:
    if "Results" not in report and "ArtifactName" not in report:
        raise ReportFormatError("no ArtifactName/Results: not a `trivy image -f json` report")
    metadata = report.get("Metadata") or {}
    os_info = metadata.get("OS") or {}
    vulnerabilities = []
    for result in report.get("Results") or []:
        for vuln in result.get("Vulnerabilities") or []:
            vulnerabilities.append(
                {
                    "id": vuln.get("VulnerabilityID"),
                    "package": vuln.get("PkgName"),
                    "installed": vuln.get("InstalledVersion"),
                    "fixed": vuln.get("FixedVersion") or None,
                    "severity": _severity(vuln.get("Severity")),
                    "published": vuln.get("PublishedDate"),
                    "url": vuln.get("PrimaryURL"),
                }
            )
    return {
        "image": report.get("ArtifactName"),
        "image_id": metadata.get("ImageID"),
        "digests": list(metadata.get("RepoDigests") or []),
        "os": " ".join(str(x) for x in (os_info.get("Family"), os_info.get("Name")) if x) or None,
        "tool": "trivy",
        "scanned_at": report.get("CreatedAt"),
        "counts": _counts(vulnerabilities),
        "vulnerabilities": vulnerabilities,
    }


def images_from_trivy(document: Any) -> list[dict[str, Any]]:
    """Images of a `trivy image --format json` report (or a JSON list of such reports)."""
    reports = document if isinstance(document, list) else [document]
    if not all(isinstance(r, dict) for r in reports):
        raise ReportFormatError("expected a JSON object (or a list of objects)")
    return [_trivy_image(report) for report in reports]


def images_from_grype(document: Any) -> list[dict[str, Any]]:
    """The image of a `grype IMAGE -o json` report."""
    if not isinstance(document, dict) or "matches" not in document:
        raise ReportFormatError("no `matches`: not a `grype -o json` report")
    source = document.get("source") or {}
    target = source.get("target") or {}
    if not isinstance(target, dict):  # directory scans name the path only
        target = {"userInput": str(target)}
    distro = document.get("distro") or {}
    descriptor = document.get("descriptor") or {}
    vulnerabilities = []
    for match in document["matches"]:
        vuln = match.get("vulnerability") or {}
        artifact = match.get("artifact") or {}
        fix = vuln.get("fix") or {}
        fixed = ", ".join(fix.get("versions") or []) if fix.get("state") == "fixed" else ""
        vulnerabilities.append(
            {
                "id": vuln.get("id"),
                "package": artifact.get("name"),
                "installed": artifact.get("version"),
                "fixed": fixed or None,
                "severity": _severity(vuln.get("severity")),
                "published": None,
                "url": (vuln.get("urls") or [vuln.get("dataSource")])[0],
            }
        )
    os_name = " ".join(str(x) for x in (distro.get("name"), distro.get("version")) if x)
    return [
        {
            "image": target.get("userInput"),
            "image_id": target.get("imageID"),
            "digests": list(target.get("repoDigests") or []),
            "os": os_name or None,
            "tool": "grype",
            "scanned_at": descriptor.get("timestamp"),
            "counts": _counts(vulnerabilities),
            "vulnerabilities": vulnerabilities,
        }
    ]


_PARSERS = {"trivy": images_from_trivy, "grype": images_from_grype}


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
            images = _PARSERS[target.tool](target.document)
        except ReportFormatError as exc:
            return {
                "scan.images": failed_fact(
                    "scan.images", target.name, f"{target.path}: {exc}", source=source
                )
            }
        return {"scan.images": new_fact("scan.images", target.name, images, source=source)}
