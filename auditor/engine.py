"""plan -> collect -> evaluate, per target, with one target's failure kept to itself.

Collection and evaluation are separate steps joined by the facts (TargetRecord.facts), so a
run can be collected now and evaluated later, elsewhere (evidence bundles).
"""

from __future__ import annotations

import contextlib
import logging
import queue
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

from auditor.collectors import collector_for
from auditor.config import TargetSpec
from auditor.errors import AuditorError
from auditor.facts import utc_now
from auditor.judging import Judging, groups_of, result
from auditor.model import (
    Result,
    Status,
    Subject,
    TargetKind,
    TargetRecord,
)
from auditor.profiles import LoadedProfile
from auditor.targets import open_target
from auditor.workers import WorkerPool, default_workers

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
    *,
    judging: Judging | None = None,
) -> list[Result]:
    """Judge one target's facts with every check of its kind: plan -> group -> judge.
    `judging` is the run's (`judging_for`: it may share large groups of subjects with worker
    processes); without one, everything is judged in this process."""
    checks = profile.checks_for(record.kind)
    info = {"name": record.name, "url": record.url, "kind": str(record.kind)}
    if record.error is not None:
        itself = Subject(kind=str(record.kind), name=record.name)
        reason = f"target could not be audited: {record.error}"
        return [result(c, record.name, itself, Status.ERROR, reason) for c in checks]
    facts = {fact.name: fact for fact in record.facts}
    groups = groups_of(checks, record.name, info, facts, variables)
    return (judging or Judging()).judge(groups)


def judging_for(workers: int | None) -> Judging:
    """A run's judging: in this process, or sharing large groups with `workers` worker
    processes (default: one per spare core; 0: none; see workers.py). Close it (`with`)."""
    count = default_workers() if workers is None else workers
    return Judging(WorkerPool(count)) if count > 0 else Judging()


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
    judging = judging_for(workers)  # the run's: its judging thread is the only one using it

    def judge(gathered: Future[Callable[[], TargetRecord]], spec: TargetSpec) -> Judged:
        record = gathered.result()()
        variables = {**profile.variables, **spec.variables}
        return Judged(record, evaluate(profile, record, variables, judging=judging), variables)

    # `concurrency` threads hold the connections; ONE thread reads and judges what they
    # gathered. A connection is released as soon as its target has answered, so the next
    # one is not kept waiting for the GIL-bound parsing and judging, and those are not
    # split across many threads that would take the GIL from the connections in turn.
    with (
        judging,  # closed last: the judging thread is done with it by then
        ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="target") as io,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="judge") as cpu,
    ):
        for spec in specs:
            io.submit(gather, profile, spec).add_done_callback(
                partial(_hand_over, cpu, judge, spec, judged)
            )
        for _ in specs:  # the judge finishes targets in the order they were handed over
            on_target_done(judged.get().result())
