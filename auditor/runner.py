"""One run, end to end: judged targets in, a recorded run, its reports and an exit status out.

`auditor run`, `auditor evaluate` and (through `run`) `auditor schedule` all come here; the
CLI only turns flags into a `RunPlan` and prints. Where judged targets come from is a
`TargetSource`: live targets audited by the engine, or the facts of an evidence bundle.
Everything after that is the same for both: the recorder applies attestations and waivers
once and hands each target to the store as it finishes; Ctrl-C or SIGTERM keeps what
finished; the reports are written; the gates decide the exit status.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol, TypeVar

from auditor import cyclegc, engine
from auditor.config import Gates, TargetSpec
from auditor.errors import ExitStatus
from auditor.model import Severity, Status, TargetRecord
from auditor.profiles import LoadedProfile
from auditor.recorder import Recorder, RecordOptions
from auditor.reporters import ReportRequest, write
from auditor.sanitize import plain

T = TypeVar("T")
Say = Callable[[str], None]


class TargetSource(Protocol):
    """Where a run's judged targets come from."""

    @property
    def kind(self) -> str:
        """How the store names the run's source: "run", "evaluate"."""

    @property
    def names(self) -> list[str]:
        """The targets' names, in report order."""

    @property
    def makes_cycles(self) -> bool:
        """Whether judging a target can leave cycle garbage (cyclegc.run_policy)."""

    def judge(self, profile: LoadedProfile, on_target_done: engine.TargetDone) -> None:
        """Judge every target, handing each to `on_target_done` as it is judged."""


@dataclass(frozen=True)
class LiveTargets:
    """Targets audited now: connected to, collected from and judged by the engine."""

    specs: Sequence[TargetSpec]
    concurrency: int = 8
    workers: int | None = None
    kind: str = "run"
    makes_cycles: bool = True

    @property
    def names(self) -> list[str]:
        return [spec.display_name for spec in self.specs]

    def judge(self, profile: LoadedProfile, on_target_done: engine.TargetDone) -> None:
        engine.run(
            profile,
            self.specs,
            on_target_done,
            concurrency=self.concurrency,
            workers=self.workers,
        )


@dataclass(frozen=True)
class CollectedTargets:
    """Targets whose facts were collected earlier (an evidence bundle), judged now."""

    records: Sequence[tuple[TargetRecord, Mapping[str, Any]]]
    workers: int | None = None
    kind: str = "evaluate"
    makes_cycles: bool = True

    @property
    def names(self) -> list[str]:
        return [record.name for record, _ in self.records]

    def judge(self, profile: LoadedProfile, on_target_done: engine.TargetDone) -> None:
        with engine.judging_for(self.workers) as judging:
            for record, target_variables in self.records:
                variables = {**profile.variables, **target_variables}
                results = engine.evaluate(profile, record, variables, judging=judging)
                on_target_done(engine.Judged(record, results, variables))


@dataclass(frozen=True)
class RunPlan:
    """What to do with the judged targets besides judging them."""

    reports: Sequence[ReportRequest]
    record: RecordOptions = field(default_factory=RecordOptions)
    gates: Gates = field(default_factory=Gates)
    quiet: bool = False
    progress: bool = False  # a progress bar on stderr (only when it is a terminal)
    extra: Mapping[str, Any] = field(default_factory=dict)  # e.g. where a bundle came from
    run_id: str = field(default_factory=lambda: str(uuid.uuid4()))


def execute(profile: LoadedProfile, source: TargetSource, plan: RunPlan, say: Say) -> ExitStatus:
    """Judge `source`'s targets with `profile`, record the run, write its reports, gate it.

    `say` prints one line for the operator (stderr). An interrupted run writes the reports of
    what finished, marks the run incomplete and leaves the process at once (exit 128+signal).
    """
    names = source.names
    recorder = Recorder(
        profile, names, plan.record, source=source.kind, extra=plan.extra, run_id=plan.run_id
    )
    try:
        bar = _Progress(len(names)) if plan.progress else nullcontext(None)
        finished = False
        with bar as progress, _signals_as_interrupt() as caught:

            def done(judged: engine.Judged) -> None:
                recorder.target_done(judged)
                collector.target_done()
                if progress is not None:
                    progress.advance()

            try:
                with cyclegc.run_policy(len(names), makes_cycles=source.makes_cycles) as collector:
                    in_background(lambda: source.judge(profile, done))
                finished = True
            except KeyboardInterrupt:
                pass
        if not finished:
            _interrupted(recorder, plan.reports, say, signum=caught.get("signal"))
        with cyclegc.held_out_of_sight():
            doc = recorder.complete()
            finish_reports(recorder, doc, plan.reports, say, quiet=plan.quiet)
            return exit_status(doc, plan.gates, say)
    finally:
        recorder.close()


def finish_reports(
    recorder: Recorder,
    doc: dict[str, Any],
    requests: Sequence[ReportRequest],
    say: Say,
    *,
    quiet: bool,
) -> None:
    """Reports, warnings, metrics and the webhook of a finished run; a store error is raised
    after the reports are written (the audit itself is not lost)."""
    write_reports(doc, requests, say, quiet=quiet)
    for line in recorder.warnings() + recorder.export(doc):
        say(f"auditor: warning: {line}")
    if recorder.store_error is not None:
        raise recorder.store_error
    if recorder.writer is not None and not quiet:
        say(f"stored run {recorder.run_id} in {recorder.writer.opened()}")


def write_reports(
    doc: dict[str, Any], requests: Sequence[ReportRequest], say: Say, *, quiet: bool
) -> None:
    """Every requested report, then (unless quiet or a report went to stdout) the terminal
    summary and where each report went."""
    to_stdout = any(r.path == "-" for r in requests)
    for request in requests:
        write(request, doc)
    if not quiet and not to_stdout:
        write(ReportRequest("terminal", "-"), doc)
        for request in requests:
            say(f"wrote {request.format} report: {request.path}")


def exit_status(doc: dict[str, Any], gates: Gates, say: Say) -> ExitStatus:
    """3 when no target could be audited, 1 when a gate failed, else 0."""
    if doc["targets"] and all(t["error"] for t in doc["targets"]):
        for target in doc["targets"]:
            say(f"auditor: {plain(target['name'])}: {plain(target['error'])}")
        return ExitStatus.NO_TARGET
    failed = failed_gates(doc, gates)
    for reason in failed:
        say(f"auditor: gate failed: {reason}")
    return ExitStatus.GATE_FAILED if failed else ExitStatus.OK


def failed_gates(doc: dict[str, Any], gates: Gates) -> list[str]:
    """Why the run's document fails its gates (empty when it meets them all)."""
    overall = doc["score"]["overall"]
    failed: list[str] = []
    if gates.fail_under is not None and (overall["value"] or 0) < gates.fail_under:
        failed.append(f"score {overall['value']} is below {gates.fail_under:g}")
    if gates.min_coverage is not None and (overall["coverage"] or 0) < gates.min_coverage:
        failed.append(f"coverage {overall['coverage']}% is below {gates.min_coverage:g}%")
    if gates.fail_on is not None:
        failed += _fail_on(doc, gates.fail_on)
    return failed


def _fail_on(doc: dict[str, Any], floor: Severity) -> list[str]:
    """Why --fail-on fails: failing results of `floor` or worse, and errored ones (unknown is
    never compliant), counting the checks of targets that could not be audited at all."""
    counts = {Status.FAIL: 0, Status.ERROR: 0}
    for r in doc["results"]:
        if r["status"] in counts and Severity(r["severity"]).rank >= floor.rank:
            counts[Status(r["status"])] += 1
    for target in doc.get("not_audited", []):
        counts[Status.ERROR] += sum(
            n for s, n in target["checks_by_severity"].items() if Severity(s).rank >= floor.rank
        )
    reasons = []
    if counts[Status.FAIL]:
        reasons.append(f"{counts[Status.FAIL]} failing result(s) of severity {floor} or worse")
    if counts[Status.ERROR]:
        reasons.append(
            f"{counts[Status.ERROR]} result(s) of severity {floor} or worse could not be evaluated"
        )
    return reasons


def _interrupted(
    recorder: Recorder, requests: Sequence[ReportRequest], say: Say, *, signum: int | None
) -> NoReturn:
    """Keep what finished, write the reports of the incomplete run, and leave at once.

    os._exit: targets still in flight run in worker threads that Python cannot stop, and a
    normal exit would wait for every one of them (and the queued ones) to finish.
    """
    try:
        doc = recorder.interrupted()
        kept = len(doc["targets"])
        write_reports(doc, requests, say, quiet=True)
        stored = f" in run {recorder.run_id}" if recorder.stored() else ""
        say(
            f"auditor: interrupted: kept {kept} of {len(recorder.names)} target(s){stored} "
            "(marked incomplete)"
        )
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(128 + (signum or signal.SIGINT))


@contextmanager
def _signals_as_interrupt() -> Iterator[dict[str, int]]:
    """SIGTERM (and SIGINT, as ever) raise KeyboardInterrupt in the main thread, once; yields
    a dict that holds the signal number once one came."""
    caught: dict[str, int] = {}
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return

    def interrupt(signum: int, _frame: Any) -> None:
        if "signal" in caught:  # one interruption is enough: finish keeping what we have
            return
        caught["signal"] = signum
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield caught
    finally:
        if "signal" not in caught:  # after a signal, later ones stay ignored until exit
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def in_background(work: Callable[[], T]) -> T:
    """Run `work` in a daemon thread while this (main) thread waits, so that a signal is
    handled at once instead of after the engine's thread pool has drained."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = work()
        except BaseException as exc:  # handed to the main thread below
            box["error"] = exc

    thread = threading.Thread(target=target, name="auditor-engine", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.2)
    if "error" in box:
        raise box["error"]
    result: T = box["value"]
    return result


class _Progress:
    """A progress bar of targets on stderr (rich), drawn while the run lasts."""

    def __init__(self, total: int) -> None:
        self.total = total

    def __enter__(self) -> _Progress:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self.bar = Progress(
            "auditing",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self.bar.__enter__()
        self.task = self.bar.add_task("targets", total=self.total)
        return self

    def advance(self) -> None:
        self.bar.advance(self.task)

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(None, None, None)
