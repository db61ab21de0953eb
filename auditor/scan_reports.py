"""The report formats of vulnerability scanners (Trivy, Grype), read into one shape.

The pure functions `images_from_trivy` and `images_from_grype` normalise each tool's JSON
into the same shape, so one set of checks judges both:

    {"image": "nginx:1.25", "image_id": "sha256:3f2c…", "digests": ["nginx@sha256:…"],
     "layers": ["sha256:5d4c…"],
     "os": "debian 12.5", "tool": "trivy", "scanned_at": "2026-11-20T08:00:00Z",
     "counts": {"critical": 1, "high": 3, ...},
     "vulnerabilities": [{"id": "CVE-2024-1234", "package": "libssl3",
                          "installed": "3.0.11-1~deb12u2", "fixed": "3.0.13-1~deb12u1",
                          "severity": "high", "published": "2024-01-10T00:00:00Z",
                          "url": "https://…"}]}

`image_id`, `digests` and `layers` (diff_ids, bottom first) are the image's identity as Docker
gives it (`Id`, `RepoDigests`, `RootFS.Layers`), and as docker.images and docker.image_contents
carry it, so a report can join a scanner's findings with auditor's own for one image.
`fixed` is null when no fixed version exists; `published` is null when the report has no
date (Grype), and `severity` is one of critical, high, medium, low, negligible, unknown.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

SEVERITIES = ("critical", "high", "medium", "low", "negligible", "unknown")


class ReportFormatError(ValueError):
    """The JSON is not the report format of the tool it was imported as."""


def _severity(value: Any) -> str:
    text = str(value or "unknown").lower()
    return text if text in SEVERITIES else "unknown"


def _counts(vulnerabilities: list[dict[str, Any]]) -> dict[str, int]:
    found = Counter(v["severity"] for v in vulnerabilities)
    return {severity: found.get(severity, 0) for severity in SEVERITIES}


def _object(value: Any, where: str) -> Mapping[str, Any]:
    """`value` when it is a JSON object (or absent: empty); else the item is named."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ReportFormatError(f"{where}: expected a JSON object, got {_json_type(value)}")
    return value


def _array(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ReportFormatError(f"{where}: expected a JSON array, got {_json_type(value)}")
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    for kind, name in ((bool, "a boolean"), (str, "a string"), (list, "an array")):
        if isinstance(value, kind):
            return name
    return "an object" if isinstance(value, dict) else "a number"


def _text(value: Any) -> str | None:
    """A scalar field as text (null stays null); objects and arrays are not text."""
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value)


def image_id(value: Any) -> str | None:
    """A content digest as Docker writes it: "sha256:<hex>" (a bare hex digest, as some
    reports give it, gains the prefix)."""
    text = _text(value)
    if text is None:
        return None
    text = text.strip().lower()
    if len(text) == 64 and all(c in "0123456789abcdef" for c in text):
        return f"sha256:{text}"
    return text


def _trivy_image(report: Mapping[str, Any], where: str) -> dict[str, Any]:
    if "Results" not in report and "ArtifactName" not in report:
        raise ReportFormatError(
            f"{where}no ArtifactName/Results: not a `trivy image -f json` report"
        )
    metadata = _object(report.get("Metadata"), f"{where}Metadata")
    os_info = _object(metadata.get("OS"), f"{where}Metadata.OS")
    vulnerabilities = []
    for r_index, result in enumerate(_array(report.get("Results"), f"{where}Results")):
        at = f"{where}Results[{r_index}]"
        found = _object(result, at).get("Vulnerabilities")
        for v_index, item in enumerate(_array(found, f"{at}.Vulnerabilities")):
            vuln = _object(item, f"{at}.Vulnerabilities[{v_index}]")
            vulnerabilities.append(
                {
                    "id": _text(vuln.get("VulnerabilityID")),
                    "package": _text(vuln.get("PkgName")),
                    "installed": _text(vuln.get("InstalledVersion")),
                    "fixed": _text(vuln.get("FixedVersion")) or None,
                    "severity": _severity(_text(vuln.get("Severity"))),
                    "published": _text(vuln.get("PublishedDate")),
                    "url": _text(vuln.get("PrimaryURL")),
                }
            )
    digests = _array(metadata.get("RepoDigests"), f"{where}Metadata.RepoDigests")
    layers = _array(metadata.get("DiffIDs"), f"{where}Metadata.DiffIDs")
    return {
        "image": _text(report.get("ArtifactName")),
        "image_id": image_id(metadata.get("ImageID")),
        "digests": [str(d) for d in digests],
        "layers": [image_id(d) for d in layers],
        "os": " ".join(str(x) for x in (os_info.get("Family"), os_info.get("Name")) if x) or None,
        "tool": "trivy",
        "scanned_at": _text(report.get("CreatedAt")),
        "counts": _counts(vulnerabilities),
        "vulnerabilities": vulnerabilities,
    }


def images_from_trivy(document: Any) -> list[dict[str, Any]]:
    """Images of a `trivy image --format json` report (or a JSON list of such reports)."""
    if isinstance(document, list):
        if not document:
            raise ReportFormatError("an empty list: not a `trivy image -f json` report")
        return [_trivy_image(_object(r, f"[{i}]"), f"[{i}].") for i, r in enumerate(document)]
    if not isinstance(document, dict):
        raise ReportFormatError(
            f"expected a JSON object (or a list of objects), got {_json_type(document)}"
        )
    return [_trivy_image(document, "")]


def images_from_grype(document: Any) -> list[dict[str, Any]]:
    """The image of a `grype IMAGE -o json` report."""
    if not isinstance(document, dict) or "matches" not in document:
        raise ReportFormatError("no `matches`: not a `grype -o json` report")
    source = _object(document.get("source"), "source")
    target_value = source.get("target")
    if isinstance(target_value, dict):
        target: Mapping[str, Any] = target_value
    else:  # directory scans name the path only
        target = {"userInput": _text(target_value)}
    distro = _object(document.get("distro"), "distro")
    descriptor = _object(document.get("descriptor"), "descriptor")
    vulnerabilities = []
    for index, item in enumerate(_array(document["matches"], "matches")):
        match = _object(item, f"matches[{index}]")
        vuln = _object(match.get("vulnerability"), f"matches[{index}].vulnerability")
        artifact = _object(match.get("artifact"), f"matches[{index}].artifact")
        fix = _object(vuln.get("fix"), f"matches[{index}].vulnerability.fix")
        versions = _array(fix.get("versions"), f"matches[{index}].vulnerability.fix.versions")
        fixed = ", ".join(str(v) for v in versions) if fix.get("state") == "fixed" else ""
        urls = _array(vuln.get("urls"), f"matches[{index}].vulnerability.urls")
        vulnerabilities.append(
            {
                "id": _text(vuln.get("id")),
                "package": _text(artifact.get("name")),
                "installed": _text(artifact.get("version")),
                "fixed": fixed or None,
                "severity": _severity(_text(vuln.get("severity"))),
                "published": None,
                "url": _text((urls or [vuln.get("dataSource")])[0]),
            }
        )
    os_name = " ".join(str(x) for x in (distro.get("name"), distro.get("version")) if x)
    digests = _array(target.get("repoDigests"), "source.target.repoDigests")
    layers = [
        image_id(_object(layer, f"source.target.layers[{index}]").get("digest"))
        for index, layer in enumerate(_array(target.get("layers"), "source.target.layers"))
    ]
    return [
        {
            "image": _text(target.get("userInput")),
            "image_id": image_id(target.get("imageID")),
            "digests": [str(d) for d in digests],
            "layers": layers,
            "os": os_name or None,
            "tool": "grype",
            "scanned_at": _text(descriptor.get("timestamp")),
            "counts": _counts(vulnerabilities),
            "vulnerabilities": vulnerabilities,
        }
    ]


_PARSERS = {"trivy": images_from_trivy, "grype": images_from_grype}


def images_of(tool: str, document: Any) -> list[dict[str, Any]]:
    """The images of a report of `tool` (trivy or grype); ReportFormatError names the item
    that is not of the tool's shape."""
    return _PARSERS[tool](document)
