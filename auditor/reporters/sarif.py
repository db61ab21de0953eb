"""SARIF 2.1.0: checks as rules, failing subjects as results, for code-scanning dashboards.

Rules carry the check's title, expected value, remediation and references, a default level
and GitHub's `security-severity`; the SP 800-190 controls are a taxonomy the rules relate to.
Results are the failing subjects (`kind: fail`), waived ones with an accepted external
suppression, and subjects that could not be evaluated (`kind: review`). Snapshot subjects
point at their file and line; everything else gets a logical location (target/kind/name).
A target that could not be audited is a tool execution notification.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import quote

from auditor.reporters.common import checks_by_id, evidence_lines, facts_by_hash, reference_lines
from auditor.sanitize import one_line, visible

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
TAXONOMY = "NIST SP 800-190"
_LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
# GitHub code scanning buckets: >= 9 critical, >= 7 high, >= 4 medium, else low.
_SECURITY_SEVERITY = {
    "critical": "9.5",
    "high": "8.0",
    "medium": "5.5",
    "low": "3.0",
    "info": "0.0",
}


def _location(result: dict[str, Any]) -> dict[str, Any]:
    subject = result["subject"]
    kind, name = visible(subject["kind"]), visible(subject["name"])
    location: dict[str, Any] = {
        "logicalLocations": [
            {
                "name": name,
                "fullyQualifiedName": f"{visible(result['target'])}/{kind}/{name}",
                "kind": "resource",
            }
        ]
    }
    path, line = _file_line(subject.get("location"))
    if path:
        uri = ("file://" + quote(path)) if path.startswith("/") else quote(path)
        physical: dict[str, Any] = {"artifactLocation": {"uri": uri}}
        if line:
            physical["region"] = {"startLine": line}
        location["physicalLocation"] = physical
    return location


def _file_line(value: str | None) -> tuple[str, int | None]:
    """`manifests/app.yaml:12` -> ("manifests/app.yaml", 12); no line -> (path, None)."""
    if not value:
        return "", None
    path, sep, line = value.rpartition(":")
    if sep and line.isdigit() and int(line) > 0 and path:
        return path, int(line)
    return value, None


def _fingerprint(result: dict[str, Any]) -> str:
    subject = result["subject"]
    key = [result["check_id"], result["target"], subject["kind"], subject["name"], subject["id"]]
    return hashlib.sha256(json.dumps(key).encode("utf-8")).hexdigest()


def _rule(control: dict[str, Any], check: dict[str, Any]) -> dict[str, Any]:
    references = check.get("references") or {}
    help_lines = [check["remediation"]]
    if check.get("expected"):
        help_lines.append(f"Expected: {check['expected']}")
    if check.get("default"):
        help_lines.append(f"Default when absent: {check['default']}")
    help_lines += reference_lines(references)
    tags = ["security", "compliance", f"nist-800-190/{control['id']}"]
    tags += [f"nist-800-53/{item}" for item in references.get("nist_800_53", [])]
    tags += [f"cis-docker/{item}" for item in references.get("cis_docker", [])]
    tags += [f"cis-kubernetes/{item}" for item in references.get("cis_kubernetes", [])]
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
    if links:
        rule["helpUri"] = links[0]
    return rule


class SarifReporter:
    def render(self, document: dict[str, Any]) -> str:
        run = document["run"]
        checks = checks_by_id(document)
        rule_index = {check_id: i for i, check_id in enumerate(checks)}
        evidence = facts_by_hash(document)
        results = []
        for result in document["results"]:
            status = result["status"]
            if status not in ("fail", "waived", "error") or result["check_id"] not in checks:
                continue
            entry: dict[str, Any] = {
                "ruleId": result["check_id"],
                "ruleIndex": rule_index[result["check_id"]],
                "kind": "review" if status == "error" else "fail",
                "level": "none" if status == "error" else _LEVEL.get(result["severity"], "warning"),
                "message": {"text": visible(result["message"]) or visible(result["title"])},
                "locations": [_location(result)],
                "partialFingerprints": {"auditorSubject/v1": _fingerprint(result)},
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
            results.append(entry)
        notifications = [
            {
                "level": "error",
                "message": {"text": visible(f"{t['name']}: not audited: {t['error']}")},
                "timeUtc": t["finished_at"],
            }
            for t in document["targets"]
            if t["error"]
        ]
        overall = document["score"]["overall"]
        sarif = {
            "$schema": SCHEMA_URI,
            "version": "2.1.0",
            "runs": [
                {
                    "tool": {
                        "driver": {
                            "name": "auditor",
                            "version": run["tool_version"],
                            "rules": [_rule(c, k) for c, k in checks.values()],
                            "supportedTaxonomies": [{"name": TAXONOMY}],
                        }
                    },
                    "taxonomies": [
                        {
                            "name": TAXONOMY,
                            "organization": "NIST",
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
                    ],
                    "automationDetails": {"id": f"auditor/{run['profile']['id']}/{run['id']}"},
                    "invocations": [
                        {
                            "executionSuccessful": run["complete"] and not notifications,
                            "startTimeUtc": run["started_at"],
                            "endTimeUtc": run["finished_at"],
                            "toolExecutionNotifications": notifications,
                        }
                    ],
                    "results": results,
                    "properties": {
                        "profile": run["profile"],
                        "score": overall["value"],
                        "grade": overall["grade"],
                        "coverage": overall["coverage"],
                        "counts": overall["counts"],
                        "untrusted": document.get("untrusted"),
                    },
                }
            ],
        }
        return json.dumps(sarif, indent=1, ensure_ascii=False) + "\n"
