"""What every report format shares: evidence and subject lookups (target text is made safe
by auditor.sanitize)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from auditor.sanitize import one_line


def subject_text(result: dict[str, Any]) -> str:
    """`container web-1`; empty when the result is about the target itself."""
    subject = result["subject"]
    if subject["name"] == result["target"]:
        return ""
    return f"{subject['kind']} {subject['name']}"


def facts_by_hash(document: dict[str, Any]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(target name, sha256) -> the facts of that target with that data, for turning a
    result's evidence hashes into fact name, source and time."""
    index: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for target in document["targets"]:
        for fact in target["facts"]:
            index[(target["name"], fact["sha256"])].append(fact)
    return index


REFERENCE_LABELS = (
    ("nist_800_190", "NIST SP 800-190"),
    ("nist_800_53", "NIST SP 800-53 Rev. 5"),
    ("cis_docker", "CIS Docker Benchmark"),
    ("cis_kubernetes", "CIS Kubernetes Benchmark"),
    ("cis_linux", "CIS Linux Benchmark"),
    ("pss", "Pod Security Standards"),
)


def reference_lines(references: dict[str, Any]) -> list[str]:
    """`NIST SP 800-53 Rev. 5: CM-7, AC-6` lines of a check's or control's references."""
    lines = [
        f"{label}: {', '.join(map(str, references[key]))}"
        for key, label in REFERENCE_LABELS
        if references.get(key)
    ]
    return lines + [f"Link: {link}" for link in references.get("links", [])]


def checks_by_id(document: dict[str, Any]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """check id -> (its control, the check) from the document's profile."""
    return {
        check["id"]: (control, check)
        for control in document["controls"]
        for check in control["checks"]
    }


def evidence_lines(
    result: dict[str, Any], index: dict[tuple[str, str], list[dict[str, Any]]], source_limit: int
) -> list[str]:
    """One line per fact a result rests on: name, time, sha256 and the command or API call."""
    lines = []
    for digest in result["evidence"]:
        facts = index.get((result["target"], digest)) or [
            {"name": "?", "source": "", "collected_at": ""}
        ]
        for fact in facts:
            lines.append(
                f"{fact['name']} collected {fact['collected_at']} sha256:{digest} "
                f"by {one_line(fact['source'], source_limit)}"
            )
    return lines
