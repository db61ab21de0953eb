"""Waivers: accepted risks, written down, approved, dated, and shown beside the finding.

    waivers:
      - id: SEC-101
        check: host.sshd.root-login        # or control: "4.4.3"; shell globs
        targets: ["web*"]                  # target names (default: all)
        subjects: ["*"]                    # subject names (default: all)
        justification: Break-glass access until the bastion is in place.
        owner: alice@example.com
        approver: bob@example.com
        ticket: https://tracker.example.com/SEC-101
        start: 2026-01-01                  # optional
        expires: 2026-06-30                # required: a date (end of that day, UTC) or a time
        still_runs: true                   # false: the verdict is not recorded at all

A waiver in force turns a matching `fail` or `error` result into `waived`; the result keeps
its message, observed values and evidence, and `waiver.status` holds the real status. With
`still_runs: false` every matching result is waived whatever its verdict, and the verdict is
not kept. Expired waivers stop applying and are listed, as are waivers about to expire and
waivers that waived nothing (a fixed finding or a wrong selector).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Annotated, Any, TypeVar

import pydantic
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from auditor.errors import InputError
from auditor.model import Result, Status
from auditor.yamlsrc import YamlDocument, load_yaml

DEFAULT_WARNING_DAYS = 30
NOT_RUN = "not-run"  # waiver.status of a result whose verdict a `still_runs: false` waiver dropped

M = TypeVar("M", bound=BaseModel)


def _when(value: Any) -> Any:
    """A date (YYYY-MM-DD) or an ISO 8601 time, written as text: YAML gives dates as strings
    (the loader has no timestamp resolver), and a number such as 20990101 is refused rather
    than read as Unix time."""
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise ValueError("expected a date (YYYY-MM-DD) or an ISO 8601 time")
    text = value.strip()
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        return datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text[:40]!r} is not a date (YYYY-MM-DD) or an ISO 8601 time") from None


When = Annotated[date | datetime, BeforeValidator(_when)]


class WaiverError(InputError):
    """A waiver or attestation file is malformed."""


def start_of(value: When) -> datetime:
    """The first instant a date or time stands for (a date: its start, UTC)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.combine(value, time(0), tzinfo=UTC)


def end_of(value: When) -> datetime:
    """The first instant after a date or time (a date counts until its end, UTC)."""
    if isinstance(value, datetime):
        return start_of(value)
    return datetime.combine(value + timedelta(days=1), time(0), tzinfo=UTC)


def iso(value: When | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return start_of(value).isoformat().replace("+00:00", "Z")
    return value.isoformat()


class WaiverSpec(BaseModel):
    """One waiver as written in the file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str | None = Field(default=None, min_length=1)
    check: str | None = Field(default=None, min_length=1, description="check id (glob)")
    control: str | None = Field(default=None, min_length=1, description="control id (glob)")
    targets: list[str] = Field(default_factory=lambda: ["*"], description="target name globs")
    subjects: list[str] = Field(default_factory=lambda: ["*"], description="subject name globs")
    justification: str = Field(min_length=1)
    owner: str | None = None
    approver: str | None = None
    ticket: str | None = None
    start: When | None = None
    expires: When
    still_runs: bool = True

    @field_validator("targets", "subjects", mode="before")
    @classmethod
    def one_or_more(cls, value: Any) -> Any:
        """`targets: web1` means `targets: [web1]`."""
        return [value] if isinstance(value, str) else value

    @field_validator("justification")
    @classmethod
    def not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("justification must not be blank")
        return value.strip()

    @model_validator(mode="after")
    def selects_and_ends(self) -> WaiverSpec:
        if self.check is None and self.control is None:
            raise ValueError("a waiver needs `check` or `control`")
        if self.start is not None and end_of(self.expires) <= start_of(self.start):
            raise ValueError("expires before it starts")
        return self


class _WaiverFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    waivers: list[WaiverSpec]


@dataclass(frozen=True)
class Waiver:
    """A loaded waiver with its identity and where it was written."""

    spec: WaiverSpec
    id: str
    source: str  # file:line

    @property
    def starts(self) -> datetime | None:
        return start_of(self.spec.start) if self.spec.start is not None else None

    @property
    def ends(self) -> datetime:
        return end_of(self.spec.expires)

    def in_force(self, now: datetime) -> bool:
        return (self.starts is None or self.starts <= now) and now < self.ends

    def selects(self, result: Result) -> bool:
        spec = self.spec
        if spec.check is not None and not fnmatchcase(result.check_id, spec.check):
            return False
        if spec.control is not None and not fnmatchcase(result.control_id, spec.control):
            return False
        return any(fnmatchcase(result.target, g) for g in spec.targets) and any(
            fnmatchcase(result.subject.name, g) for g in spec.subjects
        )

    def describe(self) -> dict[str, Any]:
        """What a waived result carries (besides the real `status`)."""
        spec = self.spec
        return {
            "id": self.id,
            "check": spec.check,
            "control": spec.control,
            "targets": list(spec.targets),
            "subjects": list(spec.subjects),
            "justification": spec.justification,
            "owner": spec.owner,
            "approver": spec.approver,
            "ticket": spec.ticket,
            "start": iso(spec.start),
            "expires": iso(spec.expires),
            "still_runs": spec.still_runs,
            "source": self.source,
        }


@dataclass
class WaiverSet:
    """The waivers of one run, applied at one instant `now`, with what each one did."""

    path: Path
    waivers: tuple[Waiver, ...]
    now: datetime
    warning_days: int = DEFAULT_WARNING_DAYS
    waived: Counter[str] = field(default_factory=Counter)
    selected: Counter[str] = field(default_factory=Counter)

    def apply(self, results: Iterable[Result]) -> list[Result]:
        """The results with waivers in force applied (the first matching waiver wins).
        Call it once per result: it counts what each waiver did for the report."""
        active = [w for w in self.waivers if w.in_force(self.now)]
        out = []
        for result in results:
            out.append(self._apply_one(result, active))
        return out

    def _apply_one(self, result: Result, active: Sequence[Waiver]) -> Result:
        for waiver in active:
            if not waiver.selects(result):
                continue
            self.selected[waiver.id] += 1
            if not waiver.spec.still_runs:
                self.waived[waiver.id] += 1
                return replace(
                    result,
                    status=Status.WAIVED,
                    message=f"not run: waived by {waiver.id}",
                    observed={},
                    evidence=(),
                    waiver={**waiver.describe(), "status": NOT_RUN},
                )
            if result.status in (Status.FAIL, Status.ERROR):
                self.waived[waiver.id] += 1
                return replace(
                    result,
                    status=Status.WAIVED,
                    waiver={**waiver.describe(), "status": str(result.status)},
                )
        return result

    def report(self) -> dict[str, Any]:
        """The `waivers` key of the results document."""
        applied, expiring, expired, pending, unmatched = [], [], [], [], []
        horizon = self.now + timedelta(days=self.warning_days)
        for waiver in self.waivers:
            brief = {"id": waiver.id, "expires": iso(waiver.spec.expires), "source": waiver.source}
            if self.now >= waiver.ends:
                expired.append({**waiver.describe(), "status": "expired"})
                continue
            if waiver.starts is not None and self.now < waiver.starts:
                pending.append({**brief, "start": iso(waiver.spec.start)})
                continue
            if waiver.ends <= horizon:
                days = (waiver.ends - self.now).total_seconds() / 86400
                expiring.append({**brief, "days_left": round(days, 1)})
            if self.waived[waiver.id]:
                applied.append({**brief, "waived": self.waived[waiver.id]})
            elif self.selected[waiver.id]:
                reason = "every result it selects passes or does not apply: remove it?"
                unmatched.append({**brief, "reason": reason})
            else:
                unmatched.append({**brief, "reason": "it selects no result of this run"})
        return {
            "file": str(self.path),
            "checked_at": self.now.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "warning_days": self.warning_days,
            "applied": applied,
            "expiring": expiring,
            "expired": expired,
            "not_started": pending,
            "unmatched": unmatched,
        }

    def warnings(self) -> list[str]:
        """One line per waiver an operator should look at (stderr at the end of a run)."""
        report = self.report()
        lines = [
            f"waiver {w['id']} expired on {w['expires']}: it no longer applies"
            for w in report["expired"]
        ]
        lines += [
            f"waiver {w['id']} expires in {w['days_left']:g} days ({w['expires']})"
            for w in report["expiring"]
        ]
        lines += [f"waiver {w['id']} waived nothing: {w['reason']}" for w in report["unmatched"]]
        return lines


def load_waivers(
    path: Path, now: datetime | None = None, warning_days: int = DEFAULT_WARNING_DAYS
) -> WaiverSet:
    """Read and validate a waiver file; WaiverError names the file, line and waiver."""
    doc = load_yaml(path, WaiverError)
    parsed = validate(_WaiverFile, doc, "waivers")
    waivers: list[Waiver] = []
    seen: dict[str, int] = {}
    for index, spec in enumerate(parsed.waivers):
        line = doc.line_of(["waivers", index])
        waiver_id = spec.id or f"{path.name}#{index + 1}"
        if waiver_id in seen:
            raise WaiverError(
                f"duplicate waiver id (first on line {seen[waiver_id]})",
                path=path,
                line=line,
                item=waiver_id,
            )
        seen[waiver_id] = line or 0
        waivers.append(Waiver(spec, waiver_id, f"{path}:{line}"))
    return WaiverSet(path, tuple(waivers), now or datetime.now(UTC), warning_days)


def validate(model: type[M], doc: YamlDocument, key: str) -> M:
    """Validate a YAML document `{key: [items]}`; every problem names its file, line and item
    (the first problem is the message, the others follow as `more`)."""
    if not isinstance(doc.data, dict):
        raise WaiverError(f"expected a mapping with `{key}:`", path=doc.path, line=1)
    try:
        return model.model_validate(doc.data)
    except pydantic.ValidationError as exc:
        problems = [_problem(doc, err) for err in exc.errors()]
    first = problems[0]
    first.more = tuple(str(p) for p in problems[1:])
    raise first


def _problem(doc: YamlDocument, err: Any) -> WaiverError:
    loc = tuple(err["loc"])
    # Union members (date | datetime) add their type name to the location: drop it.
    loc = tuple(p for p in loc if not (isinstance(p, str) and p in ("date", "datetime")))
    item = None
    if len(loc) >= 2 and isinstance(loc[1], int):
        entries = doc.data.get(loc[0]) if isinstance(doc.data, dict) else None
        entry = entries[loc[1]] if isinstance(entries, list) and loc[1] < len(entries) else None
        if isinstance(entry, dict):
            item = str(entry.get("id") or entry.get("check") or entry.get("control") or "")
        item = item or f"{loc[0]}[{loc[1]}]"
    if err["type"] == "extra_forbidden":
        message = f"unknown key {loc[-1]!r}"
    elif err["type"] == "missing":
        message = f"missing required key {loc[-1]!r}"
    else:
        where = ".".join(str(p) for p in loc[2:])
        message = f"{where}: {err['msg']}" if where else str(err["msg"])
        message = message.replace("Value error, ", "")
    return WaiverError(message, path=doc.path, line=doc.line_of(loc), item=item)
