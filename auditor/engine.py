"""plan -> collect -> evaluate, per target, with one target's failure kept to itself.

Collection and evaluation are separate steps joined by the facts (TargetRecord.facts), so a
run can be collected now and evaluated later, elsewhere (evidence bundles).
"""

from __future__ import annotations

import contextlib
import logging
import queue
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import orjson

from auditor import cyclegc
from auditor.collectors import collector_for, fact_specs
from auditor.config import TargetSpec
from auditor.errors import AuditorError
from auditor.expr import EvaluationError, Expression, Scope
from auditor.facts import utc_now
from auditor.model import (
    Fact,
    Result,
    Status,
    Subject,
    TargetKind,
    TargetRecord,
)
from auditor.profiles import CompiledCheck, LoadedProfile
from auditor.targets import open_target
from auditor.workers import Part, default_workers, split, submit

log = logging.getLogger(__name__)

ORGANISATION = "organisation"  # the pseudo-target that attestations are about



@dataclass(frozen=True)
class Judged:
    """One target, judged: its record, its results, and the variables that judged it (the
    profile's, with the target's own overrides applied)."""

    record: TargetRecord
    results: list[Result]
    variables: Mapping[str, Any]
    audited_by: str = ""  # the worker of a distributed run; this process when empty


TargetDone = Callable[[Judged], None]


def plan(profile: LoadedProfile, kind: TargetKind) -> set[str]:
    """The facts a target of `kind` must give for the profile: each one gathered once."""
    needed: set[str] = set()
    for check in profile.checks_for(kind):
        needed |= check.facts
    return needed


def collect(profile: LoadedProfile, spec: TargetSpec) -> TargetRecord:
    """Connect to one target and gather the facts the profile needs. Never raises: a target
    that cannot be audited comes back with `error` set."""
    return gather(profile, spec)()


def gather(profile: LoadedProfile, spec: TargetSpec) -> Callable[[], TargetRecord]:
    """`collect` in two steps: read what the target gives while connected, now; read the
    facts from it, in the function returned, once the connection is closed (the host
    script's output is parsed then, so the next target can connect meanwhile)."""
    started = utc_now()
    kind = TargetKind.HOST
    try:
        target = open_target(spec)
        kind = target.kind
        variables = {**profile.variables, **spec.variables}
        with target:
            gathered = collector_for(kind).collect(target, plan(profile, kind), variables)
    except Exception as exc:  # one target never sinks a run: its reason is kept and shown
        failed = TargetRecord(
            spec.display_name, spec.url, kind, started, utc_now(), error=_reason(exc, spec)
        )
        return lambda: failed
    finished = utc_now()

    def record() -> TargetRecord:
        try:
            facts = gathered() if callable(gathered) else gathered
        except Exception as exc:  # as above
            reason = _reason(exc, spec)
            return TargetRecord(spec.display_name, spec.url, kind, started, finished, error=reason)
        ordered = tuple(facts[name] for name in sorted(facts))
        return TargetRecord(spec.display_name, spec.url, kind, started, finished, facts=ordered)

    return record


def _reason(exc: Exception, spec: TargetSpec) -> str:
    """Why a target could not be audited: an AuditorError says it itself; anything else is
    an internal error, its traceback logged for --debug."""
    if isinstance(exc, AuditorError):
        return str(exc) + (f" ({exc.hint})" if exc.hint else "")
    log.debug("internal error auditing %s", spec.display_name, exc_info=exc)
    return f"internal error: {type(exc).__name__}: {exc}"


def evaluate(
    profile: LoadedProfile,
    record: TargetRecord,
    variables: Mapping[str, Any],
    workers: int | None = None,
) -> list[Result]:
    """Judge one target's facts with every check of its kind. A large group of subjects is
    shared with `workers` other processes (default: one per spare core; see workers.py)."""
    checks = profile.checks_for(record.kind)
    info = {"name": record.name, "url": record.url, "kind": str(record.kind)}
    itself = Subject(kind=str(record.kind), name=record.name)
    if record.error is not None:
        reason = f"target could not be audited: {record.error}"
        return [_result(c, record.name, itself, Status.ERROR, reason) for c in checks]
    if workers is None:
        workers = default_workers()
    facts = {fact.name: fact for fact in record.facts}
    groups: dict[str | None, list[CompiledCheck]] = defaultdict(list)
    for check in checks:
        groups[check.check.for_each].append(check)
    parts: list[list[Result] | Callable[[], list[Result]]] = []
    submitted: list[Part] = []
    with cyclegc.paused():
        for for_each, group in groups.items():
            context = _Context(record.name, info, facts, variables, group)
            if for_each is None:
                parts.append(context.judge(itself, info))
                continue
            source = facts.get(for_each)
            if source is None or source.error is not None:
                reason = _missing(for_each, source)
                parts.append([_result(c, record.name, itself, Status.ERROR, reason) for c in group])
                continue
            try:
                items = fact_specs(record.kind)[for_each].subjects(source.data)
            except (TypeError, AttributeError, KeyError) as exc:
                reason = f"{for_each} holds no readable subjects: {exc}"
                parts.append([_result(c, record.name, itself, Status.ERROR, reason) for c in group])
                continue
            here, *elsewhere = split(items, len(group), workers)
            queued = []
            if elsewhere:
                shared = {n: f for n, f in facts.items() if any(n in c.facts for c in group)}
                if not any(for_each in c.reads_facts for c in group):
                    shared[for_each] = replace(source, data=None)  # the items go as parts
                job = (record.name, info, shared, variables, group, for_each)
                queued = [submit(workers, judge_items, *job, part) for part in elsewhere]
            parts.append(context.judge_all(for_each, here))  # while the workers judge theirs
            parts.extend(partial(_from_rows, done, group, record.name) for done in queued)
            submitted.extend(queued)
        for waiting in reversed(submitted):  # what no worker has started yet is judged here
            waiting.take_back()
        results: list[Result] = []
        for part in parts:
            results.extend(part if isinstance(part, list) else part())
    return results


# A result as a worker sends it back: the check's index in its group, the subject, status,
# message, observed values and evidence; the rest comes from the check. A Result object
# costs four times as much to send.
Row = tuple[int, Subject, str, str, dict[str, Any], tuple[str, ...]]


def judge_items(
    target: str,
    info: dict[str, str],
    facts: Mapping[str, Fact],
    variables: Mapping[str, Any],
    group: Sequence[CompiledCheck],
    for_each: str,
    items: Sequence[Any],
) -> list[Row]:
    """Judge subjects `items` of fact `for_each` with a group of checks: what a worker process
    is given to do (everything it needs is in the arguments)."""
    with cyclegc.paused():
        results = _Context(target, info, facts, variables, group).judge_all(for_each, items)
    index = {check.id: n for n, check in enumerate(group)}
    return [
        (index[r.check_id], r.subject, r.status.value, r.message, r.observed, r.evidence)
        for r in results
    ]


def _from_rows(part: Part, group: Sequence[CompiledCheck], target: str) -> list[Result]:
    return [
        _result(group[n], target, subject, Status(status), message, observed=seen, evidence=proof)
        for n, subject, status, message, seen, proof in part.results()
    ]


class _Context:
    """What the checks of one `for_each` group need on one target: one CEL scope holding the
    facts and variables they read, converted once, into which each subject is swapped.
    A check's expressions are compiled against fact names, so it never sees a fact it does
    not name even though the group shares the scope."""

    def __init__(
        self,
        target: str,
        info: dict[str, str],
        facts: Mapping[str, Fact],
        variables: Mapping[str, Any],
        group: Sequence[CompiledCheck],
    ) -> None:
        self.target = target
        self.info = info
        self.facts = facts
        self.variables = variables
        self.group = group
        self._scope: Scope | None = None
        self._ready: list[tuple[CompiledCheck, tuple[str, ...], str | None]] = []

    def _new_scope(self) -> Scope:
        expressions = [e for check in self.group for e in check.expressions]
        nested: dict[str, dict[str, Any]] = defaultdict(dict)
        for name in sorted(frozenset().union(*(e.facts for e in expressions))):
            fact = self.facts.get(name)
            if fact is not None and fact.error is None:
                kind, _, short = name.partition(".")
                nested[kind][short] = fact.data
        wanted = frozenset().union(*(c.reads_variables for c in self.group))
        variables = {
            "facts": dict(nested),
            "vars": {k: v for k, v in self.variables.items() if k in wanted},
            "target": self.info,
        }
        return Scope(variables, expressions, shared=self._content_key(expressions, variables))

    def _content_key(self, expressions: list[Expression], variables: dict[str, Any]) -> str:
        """What the group's expressions read, named by the facts' hashes: targets with equal
        keys get one converted CEL scope (see Scope)."""
        reads_target = any("target" in e.uses for e in expressions)
        facts = {
            name: fact.sha256 if fact.error is None else "error"
            for name in sorted(frozenset().union(*(e.facts for e in expressions)))
            if (fact := self.facts.get(name)) is not None
        }
        read = {"facts": facts, "vars": variables["vars"]}
        if reads_target:
            read["target"] = self.info
        return orjson.dumps(read, option=orjson.OPT_SORT_KEYS, default=str).decode()

    def judge(self, subject: Subject, data: Any) -> list[Result]:
        if self._scope is None:
            self._scope = self._new_scope()
            self._ready = [(check, *self._prepared(check)) for check in self.group]
        self._scope.enter(data)
        return [
            self._one(check, evidence, missing, subject, data)
            for check, evidence, missing in self._ready
        ]

    def judge_all(self, for_each: str, items: Sequence[Any]) -> list[Result]:
        """Judge each subject in `items`, the subjects of fact `for_each`."""
        name_subject = fact_specs(TargetKind(self.info["kind"]))[for_each].subject
        assert name_subject is not None
        results: list[Result] = []
        for item in items:
            subject = name_subject(item)
            item_error = item.get("_error") if isinstance(item, dict) else None
            if item_error:
                results.extend(
                    _result(c, self.target, subject, Status.ERROR, str(item_error))
                    for c in self.group
                )
                continue
            results.extend(self.judge(subject, item))
        return results

    def _prepared(self, check: CompiledCheck) -> tuple[tuple[str, ...], str | None]:
        """The evidence hashes of a check and why it cannot run here (None: it can): the
        same for every subject, so worked out once per check."""
        evidence = tuple(sorted(f.sha256 for n in check.facts if (f := self.facts.get(n))))
        for name in sorted(check.facts):
            fact = self.facts.get(name)
            if fact is None or fact.error is not None:
                return evidence, _missing(name, fact)
        return evidence, None

    def _one(
        self,
        check: CompiledCheck,
        evidence: tuple[str, ...],
        missing: str | None,
        subject: Subject,
        data: Any,
    ) -> Result:
        if missing is not None:
            return _result(check, self.target, subject, Status.ERROR, missing, evidence=evidence)
        scope = self._scope
        assert scope is not None
        try:
            if check.where is not None and scope.evaluate(check.where) is not True:
                return _result(
                    check, self.target, subject, Status.SKIP, "not applicable", evidence=evidence
                )
            verdict = scope.evaluate(check.assertion)
        except EvaluationError as exc:
            status, message = Status.ERROR, f"could not evaluate: {exc}"
            observed = scope.observe(check.assertion)
        else:
            if verdict is True:
                status, message = Status.PASS, check.check.title
                observed = scope.observe(check.assertion)
            elif verdict is False:
                status = Status.FAIL
                if check.observe:
                    observed = scope.observe_named(check.observe)
                else:
                    observed = scope.observe(check.assertion)
                message = check.render_message(data, self.variables, observed)
                message = message or f"not met: {check.check.title}"
            else:
                status = Status.ERROR
                message = (
                    "the evidence it needs is unknown (null) on this target"
                    if verdict is None
                    else f"assertion gave {type(verdict).__name__}, not a boolean"
                )
                observed = scope.observe(check.assertion)
        return _result(
            check, self.target, subject, status, message, observed=observed, evidence=evidence
        )


def _missing(name: str, fact: Fact | None) -> str:
    if fact is None:
        return f"fact {name} was not collected"
    return f"could not collect {name}: {fact.error}"


def _result(
    check: CompiledCheck,
    target: str,
    subject: Subject,
    status: Status,
    message: str,
    *,
    observed: dict[str, Any] | None = None,
    evidence: tuple[str, ...] = (),
) -> Result:
    return Result(
        check_id=check.id,
        control_id=check.control_id,
        title=check.check.title,
        severity=check.check.severity,
        target=target,
        subject=subject,
        status=status,
        message=message,
        observed=observed or {},
        expected=check.check.expected or check.check.assert_,
        evidence=evidence,
        remediation=check.check.remediation,
    )


def _hand_over(
    cpu: ThreadPoolExecutor,
    judge: Callable[[Future[Callable[[], TargetRecord]], TargetSpec], Judged],
    spec: TargetSpec,
    judged: queue.SimpleQueue[Future[Judged]],
    gathered: Future[Callable[[], TargetRecord]],
) -> None:
    """Queue a gathered target for judging; anything `gather` raised is raised by `judge`,
    in the thread that waits for it."""
    with contextlib.suppress(RuntimeError):  # raised once an interrupted run shut it down
        judged.put(cpu.submit(judge, gathered, spec))


def attestation_results(profile: LoadedProfile, kinds: set[TargetKind]) -> list[Result]:
    """One `manual` result per control whose remaining part needs a person's answer."""
    results = []
    for entry in profile.controls:
        attestation = entry.control.attestation
        if attestation is None:
            continue
        if attestation.applies_to and not kinds & set(attestation.applies_to):
            continue
        results.append(
            Result(
                check_id=f"attest.{entry.control.id}",
                control_id=entry.control.id,
                title=attestation.question,
                severity=attestation.severity,
                target=ORGANISATION,
                subject=Subject(kind="control", name=entry.control.id),
                status=Status.MANUAL,
                message="needs an attestation",
                expected=attestation.evidence,
            )
        )
    return results


def run(
    profile: LoadedProfile,
    specs: Sequence[TargetSpec],
    on_target_done: TargetDone,
    *,
    concurrency: int = 8,
    workers: int | None = None,
) -> None:
    """Audit every target, `concurrency` at a time, handing each to `on_target_done` as it is
    judged (the only way results leave the engine). `workers`: the processes a large group
    of subjects is shared with (see `evaluate`)."""
    judged: queue.SimpleQueue[Future[Judged]] = queue.SimpleQueue()

    def judge(gathered: Future[Callable[[], TargetRecord]], spec: TargetSpec) -> Judged:
        record = gathered.result()()
        variables = {**profile.variables, **spec.variables}
        return Judged(record, evaluate(profile, record, variables, workers), variables)

    # `concurrency` threads hold the connections; ONE thread reads and judges what they
    # gathered. A connection is released as soon as its target has answered, so the next
    # one is not kept waiting for the GIL-bound parsing and judging, and those are not
    # split across many threads that would take the GIL from the connections in turn.
    with (
        ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="target") as io,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="judge") as cpu,
    ):
        for spec in specs:
            io.submit(gather, profile, spec).add_done_callback(
                partial(_hand_over, cpu, judge, spec, judged)
            )
        for _ in specs:  # the judge finishes targets in the order they were handed over
            on_target_done(judged.get().result())
