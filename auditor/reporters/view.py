"""What the HTML and PDF reports show, arranged for reading; scores come from the document.

The view groups the document's results control by control and check by check, groups
identical findings across targets (one finding, the list of targets and subjects it holds
on), summarises passing and skipped subjects, ranks the top failing checks and indexes the
evidence. It never computes a score: every number beside a score comes from `document.score`.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import jinja2
from markupsafe import Markup

from auditor.model import fact_data
from auditor.reporters.common import subject_text
from auditor.reporters.exemptions import Exemption, exempting_variable, exemptions
from auditor.resources import templates_dir
from auditor.sanitize import one_line, visible
from auditor.scoring import trend_point

SEVERITIES = ("critical", "high", "medium", "low", "info")
STATUSES = ("fail", "error", "manual", "waived", "pass", "skip")
_SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}
# Sections of SP 800-190 section 4, in the guide's order; a profile may name others.
GUIDE_SECTIONS = {
    "image": "Images (3.1 / 4.1)",
    "registry": "Image registries (3.2 / 4.2)",
    "orchestrator": "Orchestrators (3.3 / 4.3)",
    "container": "Containers (3.4 / 4.4)",
    "host-os": "Host operating systems (3.5 / 4.5)",
    "hardware": "Hardware countermeasures (4.6)",
}
TOP_CHECKS = 10
EXCERPT_LINES = 40
EXCERPT_CHARS = 3000
LOW_COVERAGE = 80.0
PRINT_FINDINGS_BUDGET = 250  # finding rows the PDF aims at, over all failing checks
SEVERITY_COLOURS = {
    "critical": "#7f1d1d",
    "high": "#ea580c",
    "medium": "#ca8a04",
    "low": "#2563eb",
    "info": "#9ca3af",
}
SECTION_COLOURS = ("#1e3a8a", "#0f766e", "#9333ea", "#c2410c", "#be185d", "#4d7c0f", "#475569")


@dataclass(frozen=True)
class TargetView:
    """A target with a short key (`t0`) that anchors and filters use instead of its name."""

    key: str
    name: str
    url: str
    kind: str
    error: str | None
    started_at: str
    finished_at: str
    score: dict[str, Any] | None
    pseudo: bool = False  # e.g. `organisation`, which attestations are about


@dataclass(frozen=True)
class Fact:
    """One fact of one target: where it came from, when, and the hash of its data."""

    anchor: str
    target: TargetView
    name: str
    source: str
    status: int | None
    stderr: str
    collected_at: str
    sha256: str
    error: str | None


@dataclass(frozen=True)
class Excerpt:
    """The start of one piece of (redacted) evidence data, shown once per sha256."""

    anchor: str
    owner: Fact  # the fact that shows it; other facts with the same data link there
    sha256: str
    text: str
    lines: int
    shown_lines: int
    truncated: bool


@dataclass(frozen=True)
class Item:
    """One result: a check on one subject of one target."""

    result: dict[str, Any]
    target: TargetView
    subject: str  # "service ssh.service"; "" when the subject is the target itself
    evidence: tuple[Fact, ...]

    @property
    def label(self) -> str:
        return self.subject or f"{self.target.kind} {self.target.name}"


@dataclass
class Finding:
    """Results with the same status, message and observed values: one finding, held on
    every target and subject in `items`."""

    status: str
    message: str
    observed: dict[str, Any]
    expected: str
    items: list[Item] = field(default_factory=list)

    @property
    def target_keys(self) -> str:
        return " ".join(sorted({i.target.key for i in self.items}))

    @property
    def target_count(self) -> int:
        return len({i.target.key for i in self.items})

    @property
    def where(self) -> list[SubjectList]:
        """The targets it holds on, each with the names of its subjects (none: the target
        itself); `subject_noun` says what kind of subjects they are."""
        by_target: dict[str, tuple[TargetView, list[str]]] = {}
        for item in self.items:
            entry = by_target.setdefault(item.target.key, (item.target, []))
            if item.subject:
                entry[1].append(str(item.result["subject"]["name"]))
        return [SubjectList(target, tuple(subjects)) for target, subjects in by_target.values()]

    @property
    def subject_noun(self) -> str:
        """`containers`, `files` ... when all subjects are of one kind, else `subjects`."""
        kinds = {str(i.result["subject"]["kind"]) for i in self.items}
        if len(kinds) == 1 and not any(i.subject == "" for i in self.items):
            kind = kinds.pop()
            return kind if len(self.items) == 1 else f"{kind}s"
        return "subject" if len(self.items) == 1 else "subjects"

    @property
    def fact_names(self) -> list[str]:
        """The facts its results rest on, by name."""
        return sorted({fact.name for item in self.items for fact in item.evidence})


@dataclass(frozen=True)
class SubjectList:
    """Subjects of one target in one state, listed compactly."""

    target: TargetView
    subjects: tuple[str, ...]


@dataclass
class Resource:
    """One subject of one target (a Deployment, a container, the host itself) and everything
    wrong with it: its failing and unevaluable results, worst first."""

    target: TargetView
    label: str
    location: str
    items: list[Item] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        return f"res-{self.target.key}-{_slug(self.label)}"

    @property
    def worst(self) -> str:
        return min((str(i.result["severity"]) for i in self.items), key=_SEVERITY_RANK.__getitem__)

    @property
    def by_severity(self) -> list[tuple[str, int]]:
        """(severity, failing results) for the severities it has, most severe first."""
        counts = Counter(str(i.result["severity"]) for i in self.items)
        return [(s, counts[s]) for s in SEVERITIES if counts[s]]

    @property
    def ordered(self) -> list[Item]:
        return sorted(
            self.items,
            key=lambda i: (
                _SEVERITY_RANK[str(i.result["severity"])],
                i.result["status"] != "fail",
                i.result["check_id"],
            ),
        )


@dataclass(frozen=True)
class ResourceGroup:
    """The resources of one target that have something wrong, worst first."""

    target: TargetView
    resources: list[Resource]

    @property
    def results(self) -> int:
        return sum(len(r.items) for r in self.resources)


@dataclass(frozen=True)
class Series:
    """One line of a trend chart: a name, its colour, and a value per run (None: unknown)."""

    name: str
    colour: str
    values: list[float | None]


@dataclass(frozen=True)
class Trend:
    """A trend chart: the runs' finishing times and the lines drawn over them."""

    title: str
    times: list[str]
    series: list[Series]
    percent: bool  # a 0-100 score axis; else counts from 0 to the largest value

    @property
    def top(self) -> float:
        if self.percent:
            return 100.0
        values = [v for s in self.series for v in s.values if v is not None]
        return _round_up(max(values, default=0))


@dataclass
class CheckView:
    """A check of the profile with its results arranged for reading."""

    check: dict[str, Any]
    control_id: str
    score: dict[str, Any] | None
    findings: list[Finding] = field(default_factory=list)  # fail, then error
    waived: list[Item] = field(default_factory=list)
    manual: list[Item] = field(default_factory=list)  # attestation questions and answers
    passed: list[SubjectList] = field(default_factory=list)
    skipped: list[SubjectList] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def id(self) -> str:
        return str(self.check["id"])

    @property
    def anchor(self) -> str:
        return f"check-{self.id}"

    @property
    def severity(self) -> str:
        return str(self.check["severity"])

    @property
    def state(self) -> str:
        """The worst status among its results, or `none` when nothing was evaluated."""
        present = [s for s in STATUSES if self.counts[s]]
        return present[0] if present else "none"

    @property
    def failing(self) -> int:
        return self.counts["fail"]

    @property
    def failing_targets(self) -> int:
        return len({i.target.key for f in self.findings if f.status == "fail" for i in f.items})

    @property
    def statuses(self) -> str:
        return " ".join(s for s in STATUSES if self.counts[s]) or "none"


@dataclass
class ControlView:
    """An SP 800-190 control: its text, its checks and how they went."""

    control: dict[str, Any]
    section: str
    score: dict[str, Any] | None
    checks: list[CheckView] = field(default_factory=list)

    @property
    def id(self) -> str:
        return str(self.control["id"])

    @property
    def anchor(self) -> str:
        return f"control-{self.id}"

    @property
    def counts(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for check in self.checks:
            total.update(check.counts)
        return total

    @property
    def state(self) -> str:
        counts = self.counts
        present = [s for s in STATUSES if counts[s]]
        return present[0] if present else "none"

    @property
    def has_findings(self) -> bool:
        return any(c.findings or c.waived or c.manual for c in self.checks)

    @property
    def assessed(self) -> list[CheckView]:
        """Its checks that judged at least one subject in this run."""
        return [c for c in self.checks if sum(c.counts.values())]

    @property
    def unassessed(self) -> list[CheckView]:
        """Its checks with no subject in this run (no target of their kind): one line."""
        return [c for c in self.checks if not sum(c.counts.values())]

    @property
    def failing_subjects(self) -> int:
        """Distinct subjects (of any target) that fail at least one of its checks."""
        return len(
            {
                (item.target.key, item.label)
                for check in self.checks
                for finding in check.findings
                if finding.status == "fail"
                for item in finding.items
            }
        )

    @property
    def failing_checks(self) -> int:
        return sum(1 for c in self.checks if c.counts["fail"])


@dataclass
class SectionView:
    """A part of the guide with its score and controls."""

    id: str
    title: str
    score: dict[str, Any] | None
    controls: list[ControlView] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        return f"section-{self.id}"


@dataclass(frozen=True)
class ReportView:
    """Everything the HTML and PDF templates read."""

    document: dict[str, Any]
    run: dict[str, Any]
    profile: dict[str, Any]
    overall: dict[str, Any]
    formula: str
    sections: list[SectionView]
    targets: list[TargetView]
    all_targets: list[TargetView]
    controls: list[ControlView]
    checks: list[CheckView]
    top_checks: list[CheckView]
    severity_rows: list[tuple[str, dict[str, int]]]
    statuses: tuple[str, ...]
    facts: list[Fact]
    excerpts: dict[str, Excerpt]
    history: list[dict[str, Any]]
    judged_with: dict[str, Any] | None  # the profile, its digest, overlays, variables in force
    low_coverage: bool
    waived: list[Item]
    attested: list[Item]
    resources: list[ResourceGroup]
    exemptions: list[Exemption] = field(default_factory=list)  # skips a variable decided

    @property
    def has_register(self) -> bool:
        """Whether the run has waivers or attestations to show."""
        document = self.document
        return bool(self.waived or self.attested or document.get("waivers")) or bool(
            document.get("attestations")
        )

    @property
    def section_rows(self) -> list[tuple[str, dict[str, Any] | None, str]]:
        """(title, score, anchor) of every section, for the bar chart."""
        return [(s.title, s.score, s.anchor) for s in self.sections]

    @property
    def target_rows(self) -> list[tuple[str, dict[str, Any] | None, str]]:
        """(name, score, anchor) of every target, lowest score first, unscored last."""
        ordered = sorted(
            self.targets,
            key=lambda t: (
                t.score is None or t.score["value"] is None,
                (t.score or {}).get("value") or 0.0,
            ),
        )
        return [(t.name, t.score, f"target-{t.key}") for t in ordered]

    @property
    def facts_by_target(self) -> dict[str, list[Fact]]:
        grouped: dict[str, list[Fact]] = defaultdict(list)
        for fact in self.facts:
            grouped[fact.target.key].append(fact)
        return grouped

    @property
    def cited_facts(self) -> list[Fact]:
        """Facts that failing, unevaluable and waived results rest on, in target order."""
        cited: dict[str, Fact] = {}
        for check in self.checks:
            items = [i for f in check.findings for i in f.items] + check.waived
            for item in items:
                for fact in item.evidence:
                    cited.setdefault(fact.anchor, fact)
        return sorted(cited.values(), key=lambda f: (int(f.target.key[1:]), f.name))

    @property
    def print_limits(self) -> dict[str, int]:
        """How much of each check the PDF lists: everything on small runs; on large ones the
        most common findings and the first targets, so 100 targets x 150 checks stay a
        document one can read (the HTML and CSV reports list every result)."""
        failing = max(1, len(self.failing_checks))
        return {
            "findings": max(3, min(10, PRINT_FINDINGS_BUDGET // failing)),
            "where": 12 if len(self.targets) <= 10 else 8,
            "subjects": 6,
            # full hashes while the index fits a few pages, then prefixes (the JSON has all)
            "hash": 64 if len(self.cited_facts) <= 150 else 16,
        }

    @property
    def waiver_groups(self) -> list[tuple[dict[str, Any], list[Item]]]:
        """Waived results grouped by check and waiver: one waiver usually covers many
        subjects and targets, and the register lists it once."""
        groups: dict[str, tuple[dict[str, Any], list[Item]]] = {}
        for item in self.waived:
            waiver = item.result["waiver"] or {}
            key = _canonical([item.result["check_id"], waiver])
            groups.setdefault(key, (waiver, []))[1].append(item)
        return list(groups.values())

    @property
    def evidence_by_target(self) -> list[tuple[TargetView, list[Fact]]]:
        """Cited facts per target, for the PDF's evidence index."""
        grouped: dict[str, tuple[TargetView, list[Fact]]] = {}
        for fact in self.cited_facts:
            grouped.setdefault(fact.target.key, (fact.target, []))[1].append(fact)
        return list(grouped.values())

    @staticmethod
    def fact_sources(facts: Iterable[Fact]) -> list[tuple[str, str]]:
        """Distinct (fact name, command or API call) pairs, by name."""
        return sorted({(f.name, f.source) for f in facts})

    @property
    def failing_checks(self) -> list[CheckView]:
        return [c for c in self.checks if c.findings]

    @property
    def passing_checks(self) -> list[CheckView]:
        return [c for c in self.checks if not c.findings and c.counts["pass"]]

    @property
    def status_controls(self) -> list[ControlView]:
        """The controls of the status table: the guide's, in its order (those the profile
        lacks have no row), then any other."""
        return [c for section in self.sections for c in section.controls]

    @property
    def not_audited(self) -> list[TargetView]:
        return [t for t in self.targets if t.error]

    @property
    def trends(self) -> list[Trend]:
        """The score of each section and the failing results of each severity, run by run
        (earlier runs stored before these were recorded have gaps)."""
        if not self.history:
            return []
        times = [str(p["finished_at"]) for p in self.history]
        sections = [
            Series(
                s.title,
                SECTION_COLOURS[i % len(SECTION_COLOURS)],
                [p.get("sections", {}).get(s.id) for p in self.history],
            )
            for i, s in enumerate(self.sections)
            if any(p.get("sections", {}).get(s.id) is not None for p in self.history)
        ]
        severities = [
            Series(
                sev, SEVERITY_COLOURS[sev], [p.get("severities", {}).get(sev) for p in self.history]
            )
            for sev in SEVERITIES
            if any(p.get("severities", {}).get(sev) for p in self.history)
        ]
        return [
            Trend("Score by section", times, sections, percent=True),
            Trend("Failing results by severity", times, severities, percent=False),
        ]

    @property
    def unevaluated_groups(self) -> list[tuple[str, list[CheckView]]]:
        """Checks that judged nothing, by why: no target of their kind, or out of scope."""
        groups: dict[str, list[CheckView]] = defaultdict(list)
        for check in self.checks:
            counts = check.counts
            if counts["fail"] or counts["pass"] or counts["error"] or check.waived or check.manual:
                continue
            if counts["skip"]:
                groups["not applicable to any audited subject"].append(check)
            else:
                kind = check.check.get("target") or "matching"
                groups[f"no {kind} target in this run"].append(check)
        return sorted(groups.items())


def build(document: dict[str, Any]) -> ReportView:
    """Arrange `document` (auditor.document) for the HTML and PDF templates."""
    score = document["score"]
    targets = _Targets(document["targets"], score["by_target"])
    facts, by_hash = _facts(targets)
    checks: dict[str, CheckView] = {}
    controls: list[ControlView] = []
    for control in document["controls"]:
        view = ControlView(control, control["section"], score["by_control"].get(control["id"]))
        for check in control["checks"]:
            checks[check["id"]] = CheckView(
                check, control["id"], score["by_check"].get(check["id"])
            )
            view.checks.append(checks[check["id"]])
        controls.append(view)
    by_control = {c.id: c for c in controls}
    grouped: dict[str, dict[tuple[str, ...], Finding]] = defaultdict(dict)
    passed: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    skipped: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for result in document["results"]:
        check = checks.get(result["check_id"])
        if check is None:  # an attestation question, or a check the profile no longer has
            check = _extra_check(result, checks, by_control, controls, score)
        target = targets.get(result["target"])
        subject = subject_text(result)
        status = result["status"]
        check.counts[status] += 1
        if status in ("pass", "skip") and not result.get("attestation"):
            bucket = passed if status == "pass" else skipped
            shown = subject or "(the target itself)"
            exempt = exempting_variable(result)
            bucket[check.id][target.name].append(
                f"{shown} (exempt by {exempt})" if exempt else shown
            )
            continue
        evidence = tuple(f for h in result["evidence"] for f in by_hash.get((target.name, h), ()))
        item = Item(result, target, subject, evidence)
        if status == "waived":
            check.waived.append(item)
        elif status == "manual" or result.get("attestation"):
            check.manual.append(item)
        else:
            key = (status, result["message"], _canonical(result["observed"]))
            finding = grouped[check.id].get(key)
            if finding is None:
                finding = grouped[check.id][key] = Finding(
                    status, result["message"], result["observed"], result["expected"]
                )
            finding.items.append(item)
    for check in checks.values():
        order = targets.order
        check.findings = sorted(
            grouped[check.id].values(),
            key=lambda f: (f.status != "fail", -len(f.items), order(f.items[0].target)),
        )
        check.passed = _lists(passed[check.id], targets)
        check.skipped = _lists(skipped[check.id], targets)
    sections = _sections(document, controls, score["by_section"])
    all_checks = [c for control in controls for c in control.checks]
    overall = score["overall"]
    coverage = overall.get("coverage")
    return ReportView(
        document=document,
        run=document["run"],
        profile=document["run"]["profile"],
        overall=overall,
        formula=document["formula"],
        sections=sections,
        targets=targets.real,
        all_targets=targets.all,
        controls=controls,
        checks=all_checks,
        top_checks=_top(all_checks),
        severity_rows=[(s, score["by_severity"].get(s, {})) for s in SEVERITIES],
        statuses=STATUSES,
        facts=facts,
        excerpts=_excerpts(document["evidence"], facts),
        history=_history(document),
        judged_with=document.get("judged_with"),
        low_coverage=coverage is not None and coverage < LOW_COVERAGE,
        waived=[i for c in all_checks for i in c.waived],
        attested=[i for c in all_checks for i in c.manual if i.result.get("attestation")],
        resources=_resources(all_checks, targets),
        exemptions=exemptions(document["results"]),
    )


class _Targets:
    """Targets by name, with results about unknown names (attestations) as pseudo-targets."""

    def __init__(self, targets: list[dict[str, Any]], scores: dict[str, Any]) -> None:
        self.scores = scores
        self.by_name: dict[str, TargetView] = {}
        self.facts: dict[str, list[dict[str, Any]]] = {}
        for target in targets:
            self._add(target, pseudo=False)

    def _add(self, target: dict[str, Any], *, pseudo: bool) -> TargetView:
        view = TargetView(
            key=f"t{len(self.by_name)}",
            name=target["name"],
            url=target["url"],
            kind=target["kind"],
            error=target["error"],
            started_at=target["started_at"],
            finished_at=target["finished_at"],
            score=self.scores.get(target["name"]),
            pseudo=pseudo,
        )
        self.by_name[view.name] = view
        self.facts[view.name] = target.get("facts", [])
        return view

    def get(self, name: str) -> TargetView:
        found = self.by_name.get(name)
        if found is None:
            pseudo = {"name": name, "url": "", "kind": "attestation", "error": None}
            found = self._add(pseudo | {"started_at": "", "finished_at": ""}, pseudo=True)
        return found

    def order(self, target: TargetView) -> int:
        return int(target.key[1:])

    @property
    def real(self) -> list[TargetView]:
        return [t for t in self.by_name.values() if not t.pseudo]

    @property
    def all(self) -> list[TargetView]:
        return list(self.by_name.values())


def _facts(targets: _Targets) -> tuple[list[Fact], dict[tuple[str, str], list[Fact]]]:
    facts: list[Fact] = []
    by_hash: dict[tuple[str, str], list[Fact]] = defaultdict(list)
    for target in targets.real:
        for index, raw in enumerate(targets.facts[target.name]):
            fact = Fact(
                anchor=f"ev-{target.key}-{index}",
                target=target,
                name=raw["name"],
                source=raw["source"],
                status=raw["status"],
                stderr=raw["stderr"],
                collected_at=raw["collected_at"],
                sha256=raw["sha256"],
                error=raw["error"],
            )
            facts.append(fact)
            by_hash[(target.name, fact.sha256)].append(fact)
    return facts, by_hash


def _excerpts(evidence: dict[str, Any], facts: Iterable[Fact]) -> dict[str, Excerpt]:
    """The first lines of each piece of evidence data that a fact of a target refers to, its
    keys in the order of the canonical JSON it is stored and hashed as (the same whether the
    run holds it decoded, as FactJson, or read it back from the store)."""
    excerpts: dict[str, Excerpt] = {}
    for fact in facts:
        if fact.sha256 in excerpts or fact.sha256 not in evidence:
            continue
        data = fact_data(evidence[fact.sha256])
        text = json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False, default=str)
        lines = text.splitlines()
        shown = "\n".join(lines[:EXCERPT_LINES])[:EXCERPT_CHARS]
        excerpts[fact.sha256] = Excerpt(
            anchor=f"data-{fact.sha256[:16]}",
            owner=fact,
            sha256=fact.sha256,
            text=shown,
            lines=len(lines),
            shown_lines=shown.count("\n") + 1,
            truncated=len(shown) < len(text),
        )
    return excerpts


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _lists(by_target: dict[str, list[str]], targets: _Targets) -> list[SubjectList]:
    lists = [SubjectList(targets.get(name), tuple(names)) for name, names in by_target.items()]
    return sorted(lists, key=lambda s: targets.order(s.target))


def _extra_check(
    result: dict[str, Any],
    checks: dict[str, CheckView],
    by_control: dict[str, ControlView],
    controls: list[ControlView],
    score: dict[str, Any],
) -> CheckView:
    """A check view for results whose check is not in the profile: attestation questions
    (`attest.<control>`) and results of checks a later profile dropped."""
    control = by_control.get(result["control_id"])
    if control is None:
        control = ControlView(
            {
                "id": result["control_id"],
                "title": "Results of a control the profile does not define",
                "text": "",
                "risk": "",
                "coverage": "manual",
                "coverage_note": "",
                "references": {},
                "attestation": None,
                "section": "",
                "checks": [],
            },
            "",
            score["by_control"].get(result["control_id"]),
        )
        by_control[control.id] = control
        controls.append(control)
    definition = {
        "id": result["check_id"],
        "title": result["title"],
        "severity": result["severity"],
        "target": "",
        "expected": result["expected"],
        "default": "",
        "remediation": result["remediation"],
        "references": {},
        "attestation": result["check_id"].startswith("attest."),
    }
    check = CheckView(definition, control.id, score["by_check"].get(result["check_id"]))
    checks[check.id] = check
    control.checks.append(check)
    return check


def _sections(
    document: dict[str, Any], controls: list[ControlView], scores: dict[str, Any]
) -> list[SectionView]:
    """The guide's sections in its order (those the profile lacks shown as not assessed),
    then any other section the profile defines."""
    titles = GUIDE_SECTIONS | {s["id"]: s["title"] for s in document["sections"]}
    ids = list(titles)
    sections = []
    for section_id in ids:
        view = SectionView(section_id, titles[section_id], scores.get(section_id))
        view.controls = [c for c in controls if c.section == section_id]
        sections.append(view)
    orphans = [c for c in controls if c.section not in ids]
    if orphans:
        sections.append(SectionView("other", "Other results", None, orphans))
    return sections


def _top(checks: list[CheckView]) -> list[CheckView]:
    """The checks that fail most: by severity, then failing targets, then failing subjects."""
    failing = [c for c in checks if c.failing]
    failing.sort(key=lambda c: (_SEVERITY_RANK[c.severity], -c.failing_targets, -c.failing))
    return failing[:TOP_CHECKS]


def _resources(checks: list[CheckView], targets: _Targets) -> list[ResourceGroup]:
    """Failing and unevaluable results gathered by subject, per target: everything wrong
    with one Deployment, container or host in one place. A target that could not be audited
    has no resources (it shows once, with its reason)."""
    found: dict[tuple[str, str, str], Resource] = {}
    for check in checks:
        for finding in check.findings:
            for item in finding.items:
                if item.target.error:
                    continue
                subject = item.result["subject"]
                key = (item.target.key, item.label, str(subject.get("id") or ""))
                resource = found.get(key)
                if resource is None:
                    location = str(subject.get("location") or "")
                    resource = found[key] = Resource(item.target, item.label, location)
                resource.items.append(item)
    groups: dict[str, list[Resource]] = defaultdict(list)
    for resource in found.values():
        groups[resource.target.key].append(resource)
    ordered = []
    for target in targets.real:
        resources = groups.get(target.key, [])
        if resources:
            resources.sort(key=lambda r: (_SEVERITY_RANK[r.worst], -r.by_severity[0][1], r.label))
            ordered.append(ResourceGroup(target, resources))
    return ordered


def _round_up(value: float) -> float:
    """The axis top for `value`: the first of 4, 8, 20, 40, 80, 100, 200, 400, 800, 1000 ...
    that holds it, so that the quarter ticks are whole round numbers."""
    for top in (4, 8, 20, 40, 80):
        if value <= top:
            return float(top)
    scale = 100.0
    while True:
        for multiple in (1, 2, 4, 8):
            if value <= scale * multiple:
                return scale * multiple
        scale *= 10


def _slug(text: str) -> str:
    """A short, stable anchor part for any text (target text is never put in an id raw)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def _history(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Earlier runs oldest first, then this one; empty when there is no earlier run."""
    earlier = [h for h in document.get("history", []) if h["run_id"] != document["run"]["id"]]
    if not earlier:
        return []
    score = document["score"]
    overall = score["overall"]
    now = {
        "run_id": document["run"]["id"],
        "finished_at": document["run"]["finished_at"],
        "score": overall["value"],
        "coverage": overall["coverage"],
        **trend_point(score),
    }
    return [*earlier, now]


# --- the template environment shared by the HTML and PDF reporters -------------------------


def _finalize(value: Any) -> Any:
    """Applied to every `{{ expression }}`: nothing unsafe reaches the page, None prints as
    nothing. Autoescaping happens after this."""
    if value is None:
        return ""
    if isinstance(value, str) and not isinstance(value, Markup):
        return visible(value)
    return value


def _number(value: float | None, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:.1f}{suffix}"


def _when(value: str) -> str:
    """ISO 8601 UTC as `2026-11-22 17:19:01 UTC`; other text unchanged."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return str(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _day(value: str) -> str:
    return _when(value)[:10]


def _minute(value: str) -> str:
    """`2026-11-22 17:19` (UTC): a trend's time labels."""
    return _when(value)[:16]


def _json(value: Any, limit: int = 400) -> str:
    """A value the assertion read, as compact JSON on one line."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return one_line(text, limit)


def _plural(count: int, word: str, many: str | None = None) -> str:
    return f"{count} {word if count == 1 else (many or word + 's')}"


def environment() -> jinja2.Environment:
    """The Jinja2 environment of the report templates: autoescaped, strict about undefined
    names, with every expression passed through `_finalize`."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        number=_number,
        when=_when,
        day=_day,
        minute=_minute,
        json=_json,
        line=one_line,
        plural=_plural,
    )
    env.globals.update(SEVERITIES=SEVERITIES, STATUSES=STATUSES, GUIDE_SECTIONS=GUIDE_SECTIONS)
    return env
