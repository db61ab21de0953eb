"""What every report format shares: target text made safe, evidence and subject lookups."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

# C0 and C1 controls except tab, newline and carriage return, lone surrogates (they cannot be
# encoded) and the non-characters U+FFFE/U+FFFF: none is allowed in XML 1.0 or HTML.
_UNSAFE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_SPACE = re.compile(r"\s+")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """`text` with unsafe characters written as `\\x1b` / `\\ud800`: a terminal escape from a
    target is shown to the reader, not obeyed, and XML and HTML stay well formed."""
    return _UNSAFE.sub(_escape, text)


def one_line(text: str, limit: int | None = None) -> str:
    """`visible(text)` on one line with whitespace collapsed, cut to `limit` characters."""
    single = _SPACE.sub(" ", visible(text)).strip()
    if limit is not None and len(single) > limit:
        return single[: limit - 1] + "…"
    return single


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
