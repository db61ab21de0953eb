"""The concepts of auditor: profiles, controls, checks, facts, subjects, results, runs.

Profile parts are pydantic models (validated on load, unknown keys forbidden, JSON Schema
exported to benchmarks/). Runtime records (facts, results, runs) are frozen dataclasses:
there can be hundreds of thousands of results, and they only cross module boundaries.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Severity(enum.StrEnum):
    """How much a failing check matters; the weight is its share of a score."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def weight(self) -> int:
        return _WEIGHTS[self]

    @property
    def rank(self) -> int:
        """Higher is worse; used by --fail-on and for ordering."""
        return _RANKS[self]


_WEIGHTS = {
    Severity.CRITICAL: 10,
    Severity.HIGH: 6,
    Severity.MEDIUM: 3,
    Severity.LOW: 1,
    Severity.INFO: 0,
}
_RANKS = {s: i for i, s in enumerate(reversed(list(Severity)))}


class Status(enum.StrEnum):
    """The verdict on one subject for one check."""

    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"  # could not collect or evaluate; never silently a pass
    SKIP = "skip"  # not applicable (the `where` filter did not match) or exempt by a variable
    MANUAL = "manual"  # needs an attestation
    WAIVED = "waived"  # a valid waiver matched; the real status is kept beside it


class TargetKind(enum.StrEnum):
    """What kind of thing a target is; a check names the kind it applies to."""

    HOST = "host"
    DOCKER = "docker"
    KUBERNETES = "kubernetes"
    SCAN = "scan"  # an imported vulnerability scanner report (Trivy, Grype)


class Coverage(enum.StrEnum):
    """How far a control is decided by automated checks."""

    AUTOMATED = "automated"
    PARTIAL = "partial"
    MANUAL = "manual"
    NOT_APPLICABLE = "not-applicable"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)


class References(_Strict):
    """Cross-references of a check or control to other frameworks."""

    nist_800_190: list[str] = Field(default_factory=list, description="SP 800-190 items")
    nist_800_53: list[str] = Field(default_factory=list, description="SP 800-53 Rev. 5 controls")
    cis_docker: list[str] = Field(default_factory=list, description="CIS Docker Benchmark ids")
    cis_kubernetes: list[str] = Field(
        default_factory=list, description="CIS Kubernetes Benchmark ids"
    )
    cis_linux: list[str] = Field(
        default_factory=list,
        description="CIS Debian Linux / Distribution Independent Linux Benchmark item numbers",
    )
    pss: list[str] = Field(
        default_factory=list, description="Pod Security Standards levels: baseline, restricted"
    )
    links: list[str] = Field(default_factory=list, description="further reading")


class Check(_Strict):
    """One automated test: a CEL assertion judged per subject."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", description="stable, unique id")
    title: str
    severity: Severity
    target: TargetKind
    for_each: str | None = Field(
        default=None,
        description="fact whose items are the subjects; absent means one subject, the target",
    )
    where: str | None = Field(
        default=None, description="CEL applicability filter; non-matching subjects are skipped"
    )
    exempt: dict[str, str] = Field(
        default_factory=dict,
        description="profile variable NAME -> CEL reading vars.NAME, true when that variable "
        "exempts the subject; judged before `where`, an exempt subject is skipped with the "
        "message 'exempt by vars.NAME'",
    )
    assert_: str = Field(alias="assert", description="CEL; true means compliant")
    observe: dict[str, str] = Field(
        default_factory=dict,
        description="named CEL values shown as `observed` on failures (default: the fields the "
        "assertion reads)",
    )
    message: str = Field(
        default="",
        description="failure message; {{ subject.x }}, {{ observed.x }}, {{ vars.x }} filled in",
    )
    rationale: str = Field(default="", description="why the setting matters: the attack it stops")
    expected: str = Field(default="", description="what a compliant value looks like, for people")
    default: str = Field(
        default="", description="the upstream default when the setting is absent, and its source"
    )
    remediation: str
    references: References = Field(default_factory=References)


class Attestation(_Strict):
    """What a person must answer for the part of a control that cannot be probed."""

    question: str
    evidence: str = Field(description="what an assessor should attach")
    severity: Severity = Severity.MEDIUM
    applies_to: list[TargetKind] = Field(
        default_factory=list,
        description="ask only when a target of one of these kinds is audited; empty = always",
    )


class Control(_Strict):
    """An SP 800-190 item: its text in our words, its checks, and its cross-references."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    title: str
    risk: str = Field(default="", description="the section 3 risk, in our words")
    text: str = Field(description="the section 4 countermeasure, in our words")
    coverage: Coverage
    coverage_note: str = Field(
        default="", description="what the checks leave to people, or why not applicable"
    )
    references: References = Field(default_factory=References)
    checks: list[Check] = Field(default_factory=list)
    attestation: Attestation | None = None


class SectionInfo(_Strict):
    """A part of the guide (image, registry, orchestrator, container, host OS, hardware)."""

    id: str
    title: str


class Variable(_Strict):
    """A profile setting that checks read as `vars.NAME`; overlays change its value."""

    description: str
    default: Any


class ControlChecks(_Strict):
    """Checks a file contributes to a control defined in another file of the same profile
    (e.g. Kubernetes pod checks for the container runtime control 4.4.3)."""

    id: str
    checks: list[Check]


class ProfileFile(_Strict):
    """One file of a profile: a section and its controls, and checks for controls of others."""

    section: SectionInfo | None = Field(
        default=None, description="required when the file defines controls"
    )
    variables: dict[str, Variable] = Field(
        default_factory=dict, description="variables this file's checks read (unique per profile)"
    )
    controls: list[Control] = Field(default_factory=list)
    extend: list[ControlChecks] = Field(
        default_factory=list, description="checks added to controls defined in other files"
    )


class ProfileManifest(_Strict):
    """profile.yaml: identity, variables and the files holding the controls."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: str
    version: str
    description: str = ""
    variables: dict[str, Variable] = Field(default_factory=dict)
    include: list[str] = Field(description="control files, relative to profile.yaml")


class Overlay(_Strict):
    """A user's changes to a shipped profile, without copying it."""

    extends: str = Field(description="id of the profile this overlay changes")
    variables: dict[str, Any] = Field(default_factory=dict, description="new variable values")
    disable: list[str] = Field(default_factory=list, description="check ids to leave out")
    severity: dict[str, Severity] = Field(default_factory=dict, description="check id -> severity")
    controls: list[Control] = Field(
        default_factory=list, description="new controls, or new checks for existing control ids"
    )


# --- runtime records -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fact:
    """Evidence gathered from one target, with where it came from."""

    name: str
    target: str
    data: Any
    source: str  # the command or API call
    status: int | None  # exit status or HTTP status
    stderr: str
    collected_at: str  # ISO 8601, UTC
    sha256: str  # of the canonical JSON of `data`
    error: str | None = None  # set when the fact could not be collected: checks become `error`


class FactJson:
    """A fact's data kept as the canonical JSON text its sha256 is taken over, undecoded: what
    a distributed run's coordinator holds of the facts workers send. It judges none of them;
    decoded, a host's facts take five times the room of their text and, strewn among the
    results the run keeps, memory the process cannot give back. Read it with `fact_data`."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FactJson) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"FactJson({self.text[:40]!r}...)"


def fact_data(data: Any) -> Any:
    """A fact's data as Python values, whether held decoded or as FactJson (the standard
    library decodes it: integers of any size stay exact)."""
    return json.loads(data.text) if isinstance(data, FactJson) else data


@dataclass(frozen=True, slots=True)
class Subject:
    """What a result is about: the target itself, a container, an image, a pod template ..."""

    kind: str
    name: str
    id: str | None = None
    location: str | None = None  # file:line for snapshots


@dataclass(slots=True)
class Result:
    """The verdict of one check on one subject of one target. Not frozen, though nothing
    changes one after it is made (`dataclasses.replace` makes a new one): a run makes a
    result per check and subject, and a frozen dataclass takes six times as long to build."""

    check_id: str
    control_id: str
    title: str
    severity: Severity
    target: str
    subject: Subject
    status: Status
    message: str
    observed: dict[str, Any] = field(default_factory=dict)  # the values the assertion read
    expected: str = ""
    evidence: tuple[str, ...] = ()  # sha256 of the facts it rests on
    remediation: str = ""
    waiver: dict[str, Any] | None = None  # when `waived`: the waiver, and the real status
    attestation: dict[str, Any] | None = None  # the answer that decided a manual result


@dataclass(frozen=True, slots=True)
class TargetRecord:
    """One audited target and how collection went."""

    name: str
    url: str
    kind: TargetKind
    started_at: str
    finished_at: str
    error: str | None = None  # set when the target could not be audited at all
    facts: tuple[Fact, ...] = ()


@dataclass(frozen=True, slots=True)
class Run:
    """One invocation: the profile used, the targets, every result, and whether it finished."""

    id: str
    tool_version: str
    profile_id: str
    profile_version: str
    started_at: str
    finished_at: str
    targets: tuple[TargetRecord, ...]
    results: tuple[Result, ...]
    complete: bool = True
