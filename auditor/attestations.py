"""Attestations: a person's answer for the part of a control no probe can decide.

    attestations:
      - control: "4.1.1"                 # answers the `manual` result attest.4.1.1
        answer: yes                      # yes -> pass, no -> fail
        by: alice@example.com
        at: 2026-05-01
        evidence: https://wiki.example.com/image-pipeline   # a link, or a file (hashed)
        expires: 2027-05-01
        comment: Images are built by the CI pipeline only.

An answered control is scored like any check (pass or fail, weighted by its severity) and
carries `attestation: {answer, by, at, evidence, expires, ...}`. An expired attestation stops
applying: the control is `manual` again and the attestation is listed as expired. Evidence
that is a file (relative to the attestation file) must exist; its sha256 is recorded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from auditor.engine import ORGANISATION
from auditor.model import Result, Status
from auditor.regularfile import UnreadableFile, regular_file_sha256
from auditor.waivers import (
    DEFAULT_WARNING_DAYS,
    WaiverError,
    When,
    end_of,
    iso,
    start_of,
    validate,
)
from auditor.yamlsrc import load_yaml

MAX_EVIDENCE_BYTES = 2**30  # an evidence file is hashed, never held whole
PREFIX = "attest."  # check id of a control's manual result: attest.<control id>


class AttestationSpec(BaseModel):
    """One answer as written in the file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    control: str = Field(min_length=1, description="the control id, e.g. 4.1.1")
    answer: bool = Field(description="yes: the control is met; no: it is not")
    by: str = Field(min_length=1, description="who answers")
    at: When = Field(description="when they answered")
    evidence: str = Field(min_length=1, description="a link, or a file next to this one")
    expires: When
    comment: str = ""


class _AttestationFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attestations: list[AttestationSpec]


@dataclass(frozen=True)
class Attestation:
    spec: AttestationSpec
    source: str  # file:line
    evidence_sha256: str | None  # of the evidence file; None for a link

    @property
    def ends(self) -> datetime:
        return end_of(self.spec.expires)

    def describe(self) -> dict[str, Any]:
        spec = self.spec
        data: dict[str, Any] = {
            "answer": "yes" if spec.answer else "no",
            "by": spec.by,
            "at": iso(spec.at),
            "evidence": spec.evidence,
            "expires": iso(spec.expires),
        }
        if self.evidence_sha256:
            data["evidence_sha256"] = self.evidence_sha256
        if spec.comment:
            data["comment"] = spec.comment
        data["source"] = self.source
        return data


@dataclass
class AttestationSet:
    """The attestations of one run, applied at one instant `now`."""

    path: Path
    attestations: dict[str, Attestation]  # by control id
    now: datetime
    warning_days: int = DEFAULT_WARNING_DAYS
    answered: set[str] = field(default_factory=set)
    asked: set[str] = field(default_factory=set)

    def apply(self, results: Iterable[Result]) -> list[Result]:
        """Answer the `manual` results of attested controls (expired answers are ignored)."""
        out = []
        for result in results:
            out.append(self._apply_one(result))
        return out

    def _apply_one(self, result: Result) -> Result:
        if result.status is not Status.MANUAL or result.target != ORGANISATION:
            return result
        if not result.check_id.startswith(PREFIX):
            return result
        control = result.check_id[len(PREFIX) :]
        self.asked.add(control)
        attestation = self.attestations.get(control)
        if attestation is None:
            return result
        if self.now >= attestation.ends:
            expired = iso(attestation.spec.expires)
            return replace(result, message=f"needs an attestation (the last expired {expired})")
        if self.now < start_of(attestation.spec.at):
            return result
        self.answered.add(control)
        spec = attestation.spec
        verdict = "yes" if spec.answer else "no"
        message = f"attested {verdict} by {spec.by} on {iso(spec.at)}"
        if spec.comment:
            message += f": {spec.comment}"
        return replace(
            result,
            status=Status.PASS if spec.answer else Status.FAIL,
            message=message,
            attestation=attestation.describe(),
        )

    def report(self) -> dict[str, Any]:
        """The `attestations` key of the results document."""
        applied, expiring, expired, unmatched = [], [], [], []
        horizon = self.now + timedelta(days=self.warning_days)
        for control, attestation in sorted(self.attestations.items()):
            brief = {"control": control, **attestation.describe()}
            if self.now >= attestation.ends:
                expired.append(brief)
            elif control not in self.asked:
                unmatched.append({**brief, "reason": "this run asks no such control"})
            elif control in self.answered:
                applied.append(brief)
                if attestation.ends <= horizon:
                    days = (attestation.ends - self.now).total_seconds() / 86400
                    expiring.append({**brief, "days_left": round(days, 1)})
            else:
                unmatched.append({**brief, "reason": "answered in the future (`at`)"})
        return {
            "file": str(self.path),
            "checked_at": self.now.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "applied": applied,
            "expiring": expiring,
            "expired": expired,
            "unmatched": unmatched,
        }

    def warnings(self) -> list[str]:
        report = self.report()
        lines = [
            f"attestation of {a['control']} expired on {a['expires']}: the control is manual again"
            for a in report["expired"]
        ]
        lines += [
            f"attestation of {a['control']} expires in {a['days_left']:g} days ({a['expires']})"
            for a in report["expiring"]
        ]
        lines += [
            f"attestation of {a['control']} was not used: {a['reason']}"
            for a in report["unmatched"]
        ]
        return lines


def load_attestations(
    path: Path, now: datetime | None = None, warning_days: int = DEFAULT_WARNING_DAYS
) -> AttestationSet:
    """Read and validate an attestation file; WaiverError names the file, line and control."""
    doc = load_yaml(path, WaiverError)
    parsed = validate(_AttestationFile, doc, "attestations")
    found: dict[str, Attestation] = {}
    for index, spec in enumerate(parsed.attestations):
        line = doc.line_of(["attestations", index])
        if spec.control in found:
            raise WaiverError(
                "the control is attested twice", path=path, line=line, item=spec.control
            )
        digest = None
        if "://" not in spec.evidence:
            evidence = (path.parent / spec.evidence).expanduser()
            try:
                digest = regular_file_sha256(evidence, MAX_EVIDENCE_BYTES)
            except UnreadableFile as exc:
                raise WaiverError(
                    f"evidence file {spec.evidence[:80]!r}: {exc.reason} "
                    "(give a link with a scheme, or a file relative to this one)",
                    path=path,
                    line=doc.line_of(["attestations", index, "evidence"]),
                    item=spec.control,
                ) from exc
        found[spec.control] = Attestation(spec, f"{path}:{line}", digest)
    return AttestationSet(path, found, now or datetime.now(UTC), warning_days)
