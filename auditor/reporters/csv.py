"""CSV: one row per result, for spreadsheets and GRC imports; a target that could not be
audited at all is one row with status `not audited`.

Every cell is target-controlled text at heart, so cells that a spreadsheet would read as a
formula (starting with = + - @, a tab or a carriage return) get a leading apostrophe (the
OWASP advice against CSV injection), and control characters are shown as `\\x1b` text.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from auditor.reporters.common import checks_by_id, facts_by_hash
from auditor.sanitize import visible

COLUMNS = (
    "run_id",
    "target",
    "target_kind",
    "section",
    "control_id",
    "check_id",
    "title",
    "severity",
    "status",
    "subject_kind",
    "subject_name",
    "subject_id",
    "subject_location",
    "message",
    "observed",
    "expected",
    "remediation",
    "nist_800_53",
    "cis",
    "evidence",
    "waiver_justification",
    "waiver_owner",
    "waiver_expires",
    "attestation",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: str) -> str:
    """A cell that no spreadsheet evaluates, with control characters made visible."""
    text = visible(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


class CsvReporter:
    def render(self, document: dict[str, Any]) -> str:
        checks = checks_by_id(document)
        sections = {c["id"]: c["section"] for c in document["controls"]}
        kinds = {t["name"]: t["kind"] for t in document["targets"]}
        evidence = facts_by_hash(document)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(COLUMNS)
        for r in document["results"]:
            _, check = checks.get(r["check_id"], ({}, {}))
            references = check.get("references") or {}
            waiver = r["waiver"] or {}
            facts = [
                f"{fact['name']}@{fact['collected_at']} sha256:{digest}"
                for digest in r["evidence"]
                for fact in evidence.get((r["target"], digest), [{"name": "?", "collected_at": ""}])
            ]
            row = (
                document["run"]["id"],
                r["target"],
                kinds.get(r["target"], "attestation"),
                sections.get(r["control_id"], ""),
                r["control_id"],
                r["check_id"],
                r["title"],
                r["severity"],
                r["status"],
                r["subject"]["kind"],
                r["subject"]["name"],
                r["subject"]["id"] or "",
                r["subject"]["location"] or "",
                r["message"],
                json.dumps(r["observed"], ensure_ascii=False, sort_keys=True, default=str)
                if r["observed"]
                else "",
                r["expected"],
                r["remediation"],
                " ".join(references.get("nist_800_53", [])),
                " ".join(
                    [f"docker:{i}" for i in references.get("cis_docker", [])]
                    + [f"k8s:{i}" for i in references.get("cis_kubernetes", [])]
                    + [f"linux:{i}" for i in references.get("cis_linux", [])]
                ),
                " ".join(facts),
                str(waiver.get("justification", "")),
                str(waiver.get("owner", "")),
                str(waiver.get("expires", "")),
                json.dumps(r["attestation"], ensure_ascii=False, default=str)
                if r["attestation"]
                else "",
            )
            writer.writerow([neutralise(str(cell)) for cell in row])
        for down in document.get("not_audited", []):  # one row, not one per check
            cells = dict.fromkeys(COLUMNS, "")
            cells.update(
                run_id=document["run"]["id"],
                target=down["target"],
                target_kind=down["kind"],
                status="not audited",
                subject_kind=down["kind"],
                subject_name=down["target"],
                message=f"not audited: {down['reason']}",
            )
            writer.writerow([neutralise(str(cells[c])) for c in COLUMNS])
        return out.getvalue()
