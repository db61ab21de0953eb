"""Judging groups of checks: one `Group` per `for_each` on one target, judged subject by subject
in one CEL scope, by a strategy (`InProcess`, or `workers.WorkerPool` sharing large groups with
other processes) that a per-run `Judging` object holds.

A strategy changes where the work is done, never what comes out: results and their order are
the same either way (tests/unit/test_engine.py, tests/integration/test_workers.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from auditor.collectors import fact_specs
from auditor.expr import EvaluationError, Scope
from auditor.model import Fact, Result, Status, Subject, TargetKind
from auditor.profiles import CompiledCheck


@dataclass(frozen=True)
class Group:
    """The checks of one `for_each` fact (None: the target itself) on one target, and the
    subjects they judge. Picklable: a worker process gets a group with a part of `items`."""

    target: str
    info: Mapping[str, str]  # the target as CEL sees it: name, url, kind
    facts: Mapping[str, Fact]
    variables: Mapping[str, Any]
    checks: Sequence[CompiledCheck]
    for_each: str | None = None
    items: Sequence[Any] = ()  # the subjects' data, items of fact `for_each`
    failed: str | None = None  # why no subject can be judged: each check is an error

    @property
    def itself(self) -> Subject:
        return Subject(kind=self.info["kind"], name=self.target)

    def for_workers(self) -> Group:
        """This group with only the facts its checks read, for sending to another process;
        the `for_each` fact without its data unless a check reads it whole (the items go as
        parts)."""
        facts = {n: f for n, f in self.facts.items() if any(n in c.facts for c in self.checks)}
        source = facts.get(self.for_each or "")
        if source is not None and not any(self.for_each in c.reads_facts for c in self.checks):
            facts[source.name] = replace(source, data=None)
        return replace(self, facts=facts)


def groups_of(
    checks: Sequence[CompiledCheck],
    target: str,
    info: Mapping[str, str],
    facts: Mapping[str, Fact],
    variables: Mapping[str, Any],
) -> list[Group]:
    """The checks of one target in groups by `for_each`, in the order they first appear, each
    with its subjects read from the facts (or why they cannot be read)."""
    by_fact: dict[str | None, list[CompiledCheck]] = defaultdict(list)
    for check in checks:
        by_fact[check.check.for_each].append(check)
    kind = TargetKind(info["kind"])
    groups = []
    for for_each, members in by_fact.items():
        group = Group(target, info, facts, variables, members, for_each)
        if for_each is None:
            groups.append(replace(group, items=(info,)))
            continue
        source = facts.get(for_each)
        if source is None or source.error is not None:
            groups.append(replace(group, failed=missing(for_each, source)))
            continue
        try:
            items = fact_specs(kind)[for_each].subjects(source.data)
        except (TypeError, AttributeError, KeyError) as exc:
            failed = f"{for_each} holds no readable subjects: {exc}"
            groups.append(replace(group, failed=failed))
            continue
        groups.append(replace(group, items=items))
    return groups


def judge_group(group: Group) -> list[Result]:
    """Every check of `group` on each of its subjects, subject by subject."""
    if group.failed is not None:
        itself = group.itself
        return [result(c, group.target, itself, Status.ERROR, group.failed) for c in group.checks]
    return _GroupJudge(group).judge_all()


class Strategy(Protocol):
    """Where groups are judged; the results come back in the groups' order."""

    def judge(self, groups: Sequence[Group]) -> list[Result]: ...

    def close(self) -> None: ...


class InProcess:
    """Every group judged here, one after the other."""

    def judge(self, groups: Sequence[Group]) -> list[Result]:
        return [r for group in groups for r in judge_group(group)]

    def close(self) -> None:
        pass


@dataclass
class Judging:
    """What one run judges with: in this process, or sharing large groups with worker
    processes. Made once per run, used by its judging thread only, and closed with the run
    (`with`), which stops any worker processes it started."""

    strategy: Strategy = field(default_factory=InProcess)

    def judge(self, groups: Sequence[Group]) -> list[Result]:
        """The results of `groups`, in their order, then not_applicable's."""
        results = self.strategy.judge(groups)
        return results + not_applicable(groups, results)

    def __enter__(self) -> Judging:
        return self

    def __exit__(self, *_: object) -> None:
        self.strategy.close()


def not_applicable(groups: Sequence[Group], results: Sequence[Result]) -> list[Result]:
    """One `skip` on the target for each check of a `for_each` whose `where` left out every
    subject. A check has results only for the subjects it is about: a file-mode check of the
    SSH host keys is not judged, and not reported, on each of a host's fifty other files
    (that was four results in five of a host's), but a check about none of them still says
    so once."""
    judged = {(r.target, r.check_id) for r in results}
    skips = []
    for group in groups:
        if group.for_each is None or group.failed is not None or not group.items:
            continue
        reason = f"not applicable to any of {len(group.items)} {group.for_each} subjects"
        for check in group.checks:
            if (group.target, check.id) not in judged:
                evidence = tuple(
                    sorted(f.sha256 for n in check.facts if (f := group.facts.get(n)) is not None)
                )
                skips.append(
                    result(
                        check, group.target, group.itself, Status.SKIP, reason, evidence=evidence
                    )
                )
    return skips


class _GroupJudge:
    """What the checks of one group need on one target: one CEL scope holding the facts and
    variables they read, converted once, into which each subject is swapped. A check's
    expressions are compiled against fact names, so it never sees a fact it does not name
    even though the group shares the scope."""

    def __init__(self, group: Group) -> None:
        self.group = group
        self.target = group.target
        self._scope: Scope | None = None  # made for the first subject: many groups have none
        self._ready: list[tuple[CompiledCheck, tuple[str, ...], str | None]] = []

    def _new_scope(self) -> Scope:
        expressions = [e for check in self.group.checks for e in check.expressions]
        nested: dict[str, dict[str, Any]] = defaultdict(dict)
        for name in sorted(frozenset().union(*(e.facts for e in expressions))):
            fact = self.group.facts.get(name)
            if fact is not None and fact.error is None:
                kind, _, short = name.partition(".")
                nested[kind][short] = fact.data
        wanted = frozenset().union(*(c.reads_variables for c in self.group.checks))
        variables = {
            "facts": dict(nested),
            "vars": {k: v for k, v in self.group.variables.items() if k in wanted},
            "target": dict(self.group.info),
        }
        return Scope(variables, expressions)

    def judge_all(self) -> list[Result]:
        """Judge each subject of the group."""
        group = self.group
        if group.for_each is None:
            return self._judge(group.itself, group.items[0])
        name_subject = fact_specs(TargetKind(group.info["kind"]))[group.for_each].subject
        assert name_subject is not None
        results: list[Result] = []
        for item in group.items:
            subject = name_subject(item)
            item_error = item.get("_error") if isinstance(item, dict) else None
            if item_error:
                results.extend(
                    result(c, self.target, subject, Status.ERROR, str(item_error))
                    for c in group.checks
                )
                continue
            results.extend(self._judge(subject, item))
        return results

    def _judge(self, subject: Subject, data: Any) -> list[Result]:
        if self._scope is None:
            self._scope = self._new_scope()
            self._ready = [(check, *self._prepared(check)) for check in self.group.checks]
        self._scope.enter(data)
        judged = (
            self._one(check, evidence, missing, subject) for check, evidence, missing in self._ready
        )
        return [r for r in judged if r is not None]

    def _prepared(self, check: CompiledCheck) -> tuple[tuple[str, ...], str | None]:
        """The evidence hashes of a check and why it cannot run here (None: it can): the
        same for every subject, so worked out once per check."""
        facts = self.group.facts
        evidence = tuple(sorted(f.sha256 for n in check.facts if (f := facts.get(n))))
        for name in sorted(check.facts):
            fact = facts.get(name)
            if fact is None or fact.error is not None:
                return evidence, missing(name, fact)
        return evidence, None

    def _one(
        self,
        check: CompiledCheck,
        evidence: tuple[str, ...],
        absent: str | None,
        subject: Subject,
    ) -> Result | None:
        """The check's result on `subject`; None for a subject of a `for_each` that its
        `where` leaves out (not_applicable reports the check once when it leaves out all)."""
        if absent is not None:
            return result(check, self.target, subject, Status.ERROR, absent, evidence=evidence)
        scope = self._scope
        assert scope is not None
        try:
            for name, condition in check.exempt:
                if scope.evaluate(condition) is True:
                    observed = scope.observe(condition, items=False)
                    return result(
                        check,
                        self.target,
                        subject,
                        Status.SKIP,
                        f"exempt by vars.{name}",
                        observed=observed,
                        evidence=evidence,
                    )
            if check.where is not None and scope.evaluate(check.where) is not True:
                if self.group.for_each is not None:
                    return None
                return result(
                    check, self.target, subject, Status.SKIP, "not applicable", evidence=evidence
                )
            verdict = scope.evaluate(check.assertion)
        except EvaluationError as exc:
            status, message = Status.ERROR, f"could not evaluate: {exc}"
        else:
            status, message = _verdict(check, verdict)
        observed = self._observed(scope, check, status)
        if status is Status.FAIL:
            rendered = check.render_message(observed, self.group.variables)
            message = rendered or f"not met: {check.check.title}"
        return result(
            check, self.target, subject, status, message, observed=observed, evidence=evidence
        )

    @staticmethod
    def _observed(scope: Scope, check: CompiledCheck, status: Status) -> dict[str, Any]:
        """What the check's `where` and `assert` read; on a failure or an error also the items
        that decided its predicates, and on a failure its named observations and what its
        message reads."""
        failed = status is not Status.PASS
        if check.where is None:
            observed = scope.observe(check.assertion, items=failed)
        else:
            observed = scope.observe(check.where, items=failed)
            observed.update(scope.reads(check.assertion, items=failed))
        if status is Status.FAIL:
            if check.observe:
                observed.update(scope.observe_named(check.observe))
            scope.observe_chains(check.message_reads, observed)
        return observed


def _verdict(check: CompiledCheck, verdict: Any) -> tuple[Status, str]:
    """The status an assertion's value gives, with the message of a pass or an error."""
    if verdict is True:
        return Status.PASS, check.check.title
    if verdict is False:
        return Status.FAIL, ""  # rendered from what was observed
    if verdict is None:
        return Status.ERROR, "the evidence it needs is unknown (null) on this target"
    return Status.ERROR, f"assertion gave {type(verdict).__name__}, not a boolean"


def missing(name: str, fact: Fact | None) -> str:
    """Why a fact cannot be judged."""
    if fact is None:
        return f"fact {name} was not collected"
    return f"could not collect {name}: {fact.error}"


def result(
    check: CompiledCheck,
    target: str,
    subject: Subject,
    status: Status,
    message: str,
    *,
    observed: dict[str, Any] | None = None,
    evidence: tuple[str, ...] = (),
) -> Result:
    """A result of `check`, with what the check itself says."""
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
