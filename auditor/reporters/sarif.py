"""SARIF 2.1.0: checks as rules, failing subjects as results, for code-scanning dashboards.

Rules carry the check's title, expected value, remediation and references, a default level
and GitHub's `security-severity`; the SP 800-190 controls are a taxonomy the rules relate to.
Results are the failing subjects (`kind: fail`), waived ones with an accepted external
suppression, subjects a profile variable exempts (`kind: notApplicable`, suppressed with
"exempt by vars.NAME") and subjects that could not be evaluated (`kind: review`), each at
its file and line relative to %SRCROOT% (the git work tree, else the working directory). Code
scanning shows only results with a file, so subjects without one (hosts, daemons, containers,
cluster objects read live) are left out and counted in the run's `resultsWithoutFile` and in a
note per target. A target that could not be audited is a tool execution notification.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from importlib.metadata import PackageNotFoundError, metadata
from pathlib import Path
from typing import Any
from urllib.parse import quote

from auditor.reporters.common import checks_by_id, evidence_lines, facts_by_hash, reference_lines
from auditor.reporters.exemptions import exempting_variable
from auditor.reporters.srcroot import SourceRoot
from auditor.sanitize import one_line, visible

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
TAXONOMY = "NIST SP 800-190"
NIST_800_190_URI = "https://doi.org/10.6028/NIST.SP.800-190"
SRCROOT = "%SRCROOT%"
REPORTED = ("fail", "waived", "error")
_LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
# GitHub code scanning buckets: >= 9 critical, >= 7 high, >= 4 medium, else low.
_SECURITY_SEVERITY = {
    "critical": "9.5",
    "high": "8.0",
    "medium": "5.5",
    "low": "3.0",
    "info": "0.0",
}


def _location(result: dict[str, Any], uri: dict[str, str], line: int | None) -> dict[str, Any]:
    subject = result["subject"]
    kind, name = visible(subject["kind"]), visible(subject["name"])
    physical: dict[str, Any] = {"artifactLocation": uri}
    if line:
        physical["region"] = {"startLine": line}
    return {
        "physicalLocation": physical,
        "logicalLocations": [
            {
                "name": name,
                "fullyQualifiedName": f"{visible(result['target'])}/{kind}/{name}",
                "kind": "resource",
            }
        ],
    }


def _file_line(value: str | None) -> tuple[str, int | None]:
    """`manifests/app.yaml:12` -> ("manifests/app.yaml", 12); no line -> (path, None)."""
    if not value:
        return "", None
    path, sep, line = value.rpartition(":")
    if sep and line.isdigit() and int(line) > 0 and path:
        return path, int(line)
    return value, None


def _manifest_path(target_url: str, shown: str) -> Path | None:
    """The file a snapshot location names (`shown` is relative to the snapshot directory, or
    the file's own name when the snapshot is one file); None for standard input."""
    scheme, sep, where = target_url.partition("://")
    if not sep or scheme != "k8s-snapshot":
        return Path(shown)  # another target's location: a path as written
    if where == "-":
        return None
    snapshot = Path(where).expanduser()
    as_given = snapshot.name if snapshot.is_absolute() else where
    if not snapshot.is_dir() and shown == as_given:
        return snapshot
    return snapshot / shown


def _artifact(target_url: str, shown: str, root: SourceRoot) -> dict[str, str] | None:
    """The artifactLocation of file `shown` of a target: relative to %SRCROOT% when the file
    lies under the source root, else an absolute file URI; None when there is no file."""
    path = _manifest_path(target_url, shown) if shown else None
    if path is None:
        return None
    relative = root.relative(path)
    if relative is not None:
        return {"uri": quote(relative), "uriBaseId": SRCROOT}
    return {"uri": path.resolve().as_uri()}


def _fingerprint(result: dict[str, Any]) -> str:
    """Check, target, subject and its file (not its line, which moves with every edit)."""
    subject = result["subject"]
    path, _line = _file_line(subject.get("location"))
    key = [result["check_id"], result["target"], subject["kind"], subject["name"], subject["id"]]
    return hashlib.sha256(json.dumps([*key, path]).encode("utf-8")).hexdigest()


def _rule(control: dict[str, Any], check: dict[str, Any]) -> dict[str, Any]:
    references = check.get("references") or {}
    help_lines = [check["remediation"]]
    if check.get("rationale"):
        help_lines.append(f"Why: {check['rationale']}")
    if check.get("expected"):
        help_lines.append(f"Expected: {check['expected']}")
    if check.get("default"):
        help_lines.append(f"Default when absent: {check['default']}")
    help_lines += reference_lines(references)
    tags = ["security", "compliance", f"nist-800-190/{control['id']}"]
    tags += [f"nist-800-53/{item}" for item in references.get("nist_800_53", [])]
    tags += [f"cis-docker/{item}" for item in references.get("cis_docker", [])]
    tags += [f"cis-kubernetes/{item}" for item in references.get("cis_kubernetes", [])]
    tags += [f"cis-linux/{item}" for item in references.get("cis_linux", [])]
    rule: dict[str, Any] = {
        "id": check["id"],
        "shortDescription": {"text": visible(check["title"])},
        "fullDescription": {"text": visible(control["text"] or check["title"])},
        "help": {"text": visible("\n".join(help_lines))},
        "defaultConfiguration": {"level": _LEVEL.get(check["severity"], "warning")},
        "relationships": [
            {
                "target": {"id": control["id"], "toolComponent": {"name": TAXONOMY}},
                "kinds": ["relevant"],
            }
        ],
        "properties": {
            "security-severity": _SECURITY_SEVERITY.get(check["severity"], "5.5"),
            "severity": check["severity"],
            "tags": tags,
            "precision": "very-high",
            "target": check.get("target", ""),
        },
    }
    links = [link for link in references.get("links", []) if link.startswith("https://")]
    rule["helpUri"] = links[0] if links else NIST_800_190_URI
    return rule


class SarifReporter:
    """SARIF for code scanning; file paths are made relative to `root` (default: the git work
    tree around the working directory, else the working directory)."""

    def __init__(self, root: SourceRoot | None = None) -> None:
        self.root = root

    def render(self, document: dict[str, Any]) -> str:
        root = self.root or SourceRoot.detect()
        checks = checks_by_id(document)
        results, without_file = _results(document, checks, root)
        notifications = _notifications(document, without_file)
        run: dict[str, Any] = {
            "tool": {"driver": _driver(document, checks)},
            "taxonomies": [_taxonomy(document)],
            "automationDetails": {
                "id": f"auditor/{document['run']['profile']['id']}/{document['run']['id']}"
            },
            "originalUriBaseIds": {SRCROOT: {"uri": root.path.as_uri() + "/"}},
            "invocations": [_invocation(document, notifications)],
            "results": results,
            "properties": _run_properties(document, without_file),
        }
        if root.git:
            run["versionControlProvenance"] = [_provenance(root)]
        sarif = {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}
        return json.dumps(sarif, indent=1, ensure_ascii=False) + "\n"


def _results(
    document: dict[str, Any],
    checks: dict[str, tuple[dict[str, Any], dict[str, Any]]],
    root: SourceRoot,
) -> tuple[list[dict[str, Any]], Counter[str]]:
    """The SARIF results of the reported subjects that live in a file, and how many reported
    subjects were left out for having none (by target)."""
    rule_index = {check_id: i for i, check_id in enumerate(checks)}
    urls = {target["name"]: target["url"] for target in document["targets"]}
    evidence = facts_by_hash(document)
    results = []
    without_file: Counter[str] = Counter()
    artifacts: dict[tuple[str, str], dict[str, str] | None] = {}
    for result in document["results"]:
        exempt = exempting_variable(result) is not None
        if (result["status"] not in REPORTED and not exempt) or result["check_id"] not in checks:
            continue
        shown, line = _file_line(result["subject"].get("location"))
        key = (urls.get(result["target"], ""), shown)
        if key not in artifacts:  # a manifest holds many subjects; resolving costs syscalls
            artifacts[key] = _artifact(*key, root)
        artifact = artifacts[key]
        if artifact is None:
            without_file[result["target"]] += 1
            continue
        entry = _result(result, evidence, _location(result, dict(artifact), line))
        entry["ruleIndex"] = rule_index[result["check_id"]]
        results.append(entry)
    return results, without_file


def _result(
    result: dict[str, Any],
    evidence: dict[tuple[str, str], list[dict[str, Any]]],
    location: dict[str, Any],
) -> dict[str, Any]:
    status = result["status"]
    kind = {"error": "review", "skip": "notApplicable"}.get(status, "fail")
    entry: dict[str, Any] = {
        "ruleId": result["check_id"],
        "kind": kind,
        "level": _LEVEL.get(result["severity"], "warning") if kind == "fail" else "none",
        "message": {"text": visible(result["message"]) or visible(result["title"])},
        "locations": [location],
        "partialFingerprints": {"auditorSubject/v2": _fingerprint(result)},
        "properties": {
            "target": visible(result["target"]),
            "control": result["control_id"],
            "severity": result["severity"],
            "status": status,
            "observed": {
                visible(k): one_line(json.dumps(v, ensure_ascii=False, default=str), 2000)
                for k, v in result["observed"].items()
            },
            "expected": visible(result["expected"]),
            "evidence": [visible(line) for line in evidence_lines(result, evidence, 300)],
        },
    }
    if status == "skip":  # exempt by a profile variable: a decision, shown as one
        entry["suppressions"] = [
            {"kind": "external", "status": "accepted", "justification": visible(result["message"])}
        ]
    if status == "waived":
        waiver = result["waiver"] or {}
        entry["suppressions"] = [
            {
                "kind": "external",
                "status": "accepted",
                "justification": visible(str(waiver.get("justification", ""))),
                "properties": {k: visible(str(v)) for k, v in waiver.items()},
            }
        ]
    return entry


def _notifications(document: dict[str, Any], without_file: Counter[str]) -> list[dict[str, Any]]:
    """Targets that could not be audited (errors), and a note per target whose results are
    not in this log for lack of a file."""
    notes = [
        {
            "level": "error",
            "message": {"text": visible(f"{t['name']}: not audited: {t['error']}")},
            "timeUtc": t["finished_at"],
        }
        for t in document["targets"]
        if t["error"]
    ]
    notes += [
        {
            "level": "note",
            "message": {
                "text": visible(
                    f"{count} result(s) of {target} are not in this SARIF log: they concern "
                    "no file (a host, daemon, container or cluster); see the JSON, JUnit or "
                    "HTML report"
                )
            },
        }
        for target, count in sorted(without_file.items())
    ]
    return notes


def _driver(
    document: dict[str, Any], checks: dict[str, tuple[dict[str, Any], dict[str, Any]]]
) -> dict[str, Any]:
    driver: dict[str, Any] = {
        "name": "auditor",
        "version": document["run"]["tool_version"],
        "rules": [_rule(c, k) for c, k in checks.values()],
        "supportedTaxonomies": [{"name": TAXONOMY}],
    }
    homepage = _homepage()
    if homepage:
        driver["informationUri"] = homepage
    return driver


def _homepage() -> str | None:
    """The project URL of the installed distribution's metadata, if it declares one."""
    try:
        meta = metadata("auditor")
    except PackageNotFoundError:
        return None
    urls = [u.partition(",")[2].strip() for u in meta.get_all("Project-URL") or []]
    urls += meta.get_all("Home-page") or []
    return next((u for u in urls if u.startswith("https://")), None)


def _taxonomy(document: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": TAXONOMY,
        "organization": "NIST",
        "informationUri": NIST_800_190_URI,
        "shortDescription": {"text": "Application Container Security Guide"},
        "taxa": [
            {
                "id": c["id"],
                "name": visible(c["title"]),
                "shortDescription": {"text": visible(c["text"] or c["title"])},
            }
            for c in document["controls"]
        ],
    }


def _invocation(document: dict[str, Any], notifications: list[dict[str, Any]]) -> dict[str, Any]:
    run = document["run"]
    return {
        "executionSuccessful": run["complete"] and not any(t["error"] for t in document["targets"]),
        "startTimeUtc": run["started_at"],
        "endTimeUtc": run["finished_at"],
        "toolExecutionNotifications": notifications,
    }


def _run_properties(document: dict[str, Any], without_file: Counter[str]) -> dict[str, Any]:
    overall = document["score"]["overall"]
    return {
        "profile": document["run"]["profile"],
        "score": overall["value"],
        "grade": overall["grade"],
        "coverage": overall["coverage"],
        "counts": overall["counts"],
        "untrusted": document.get("untrusted"),
        "resultsWithoutFile": {
            "total": sum(without_file.values()),
            "byTarget": {visible(k): v for k, v in sorted(without_file.items())},
        },
    }


def _provenance(root: SourceRoot) -> dict[str, Any]:
    details: dict[str, Any] = {
        "repositoryUri": root.remote or root.path.as_uri(),
        "mappedTo": {"uriBaseId": SRCROOT},
    }
    if root.revision:
        details["revisionId"] = root.revision
    if root.branch:
        details["branch"] = root.branch
    return details
