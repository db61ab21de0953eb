"""The coordinator's side of a distributed run: targets that workers audit or collect.

Each target goes to the queue of its zone (the default queue without one), once the workers
serving that queue have answered a ping: a target of a zone no live worker serves is an
`error` at once ("no worker serves zone X") instead of after the answer timeout. Each answer
is handed on as it arrives, once, whatever number of times its task was delivered; a target
whose task gets no answer in time, or that the broker cannot take, is an `error` with the
reason. For `auditor run` everything after (recorder, store, reports, gates) is the
one-process run's; for `auditor collect` the coordinator writes the bundle.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from auditor import document, engine
from auditor.config import TargetSpec
from auditor.facts import utc_now
from auditor.fleet.app import BROKER_TIMEOUT, COLLECT_TASK, DEFAULT_QUEUE, TASK, make_app
from auditor.fleet.wire import (
    BadAnswer,
    ProfileRequest,
    checks_by_id,
    judged_from_json,
    task_payload,
)
from auditor.model import TargetKind, TargetRecord
from auditor.profiles import LoadedProfile

log = logging.getLogger(__name__)

ANSWER_POLL = 0.2  # seconds between two looks for answers
PRESENCE_TIMEOUT = 2.0  # seconds live workers have to say which queues they serve
# What becomes of one target: its answer (a worker's result, JSON) or why there is none.
Answered = Callable[[TargetSpec, Mapping[str, Any] | None, str | None], None]


@dataclass(frozen=True)
class Dispatch:
    """Where and how the targets of one run are handed out."""

    broker: str
    profile: ProfileRequest
    run_id: str
    answer_timeout: float  # seconds a target may take, from sending its task to its answer

    def send(self, specs: Sequence[TargetSpec], task: str, on_answer: Answered) -> None:
        """Hand every target to its zone's workers as `task`; call `on_answer` for each, in
        the order the answers arrive."""
        app = make_app(self.broker, polled=True)
        try:
            served = _served_queues(app)
        except Exception as exc:  # the broker cannot be reached at all: no target can be
            for spec in specs:
                on_answer(spec, None, f"broker: {type(exc).__name__}: {exc}")
            return
        pending: dict[str, tuple[TargetSpec, Any]] = {}
        for spec in specs:
            queue = spec.zone or DEFAULT_QUEUE
            if served is not None and queue not in served:
                on_answer(spec, None, f"no worker serves zone {queue!r} (none answered a ping)")
                continue
            try:
                sent = app.send_task(
                    task,
                    args=[task_payload(self.run_id, spec, self.profile)],
                    argsrepr=repr(spec.display_name),  # what monitors show of a task
                    queue=queue,
                    retry=True,
                    retry_policy={"max_retries": 3, "interval_start": 0.5, "interval_step": 1},
                )
            except Exception as exc:  # the broker cannot be reached: this target is lost
                on_answer(spec, None, f"broker: {type(exc).__name__}: {exc}")
                continue
            pending[sent.id] = (spec, sent)
        self._await(app, pending, on_answer)

    def _await(
        self, app: Any, pending: dict[str, tuple[TargetSpec, Any]], on_answer: Answered
    ) -> None:
        """Take each answer as it arrives (Redis: MGETs of the pending answers' keys each
        interval, fleet/results.py; RabbitMQ: the reply queue); what has no answer after
        `answer_timeout` is an error."""
        from celery.exceptions import TimeoutError as NoAnswer
        from celery.result import ResultSet

        from auditor.fleet.results import PolledRedisBackend

        polled = isinstance(app.backend, PolledRedisBackend)
        if polled:  # it deletes each answer it hands on
            answers = app.backend.get_many(
                set(pending), timeout=self.answer_timeout, interval=ANSWER_POLL
            )
        else:
            results = ResultSet([sent for _, sent in pending.values()], app=app)
            answers = results.iter_native(timeout=self.answer_timeout, interval=ANSWER_POLL)
        reason = f"no worker answered within {self.answer_timeout:g}s"
        try:
            for task_id, meta in answers:
                spec, sent = pending.pop(task_id)
                if meta.get("status") == "SUCCESS":
                    on_answer(spec, meta["result"], None)
                else:
                    on_answer(spec, None, f"the worker failed: {meta.get('result')!r}")
                if not polled:
                    sent.forget()
        except NoAnswer:
            pass
        except Exception as exc:  # the broker went away and did not come back in time
            reason = f"{reason} (broker: {type(exc).__name__}: {exc})"
        for spec, _ in pending.values():
            on_answer(spec, None, reason)


def _served_queues(app: Any) -> set[str] | None:
    """The queues live workers consume from (they answer within PRESENCE_TIMEOUT); None when
    the broker cannot tell (then every task is sent and waits for its answer). Raises when
    the broker cannot be reached (refused, not trusted, wrong password)."""
    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=2, interval_start=0.5, timeout=BROKER_TIMEOUT)
    try:
        replies = app.control.inspect(timeout=PRESENCE_TIMEOUT).active_queues() or {}
    except Exception:  # the broker is down: sending will say so, target by target
        log.debug("asking which workers are alive failed", exc_info=True)
        return None
    return {queue["name"] for queues in replies.values() for queue in queues or ()}


@dataclass(frozen=True)
class DistributedTargets:
    """Targets audited by `auditor worker` processes: a runner.TargetSource."""

    specs: Sequence[TargetSpec]
    dispatch: Dispatch
    kind: str = "run"
    makes_cycles: bool = False  # answers are decoded JSON

    @property
    def names(self) -> list[str]:
        return [spec.display_name for spec in self.specs]

    def judge(self, profile: LoadedProfile, on_target_done: engine.TargetDone) -> None:
        checks = checks_by_id(profile)

        def answered(spec: TargetSpec, result: Mapping[str, Any] | None, error: str | None) -> None:
            if result is None:
                _failed(profile, spec, error or "no answer", on_target_done)
                return
            try:
                judged = judged_from_json(result, checks)
            except BadAnswer as exc:  # another auditor version, or a corrupted answer
                _failed(profile, spec, f"the worker's answer is unusable: {exc}", on_target_done)
                return
            if judged.record.error and not judged.results:  # refused, or another profile
                variables = {**profile.variables, **spec.variables}
                results = engine.evaluate(profile, judged.record, variables)
                judged = engine.Judged(judged.record, results, variables, judged.audited_by)
            on_target_done(judged)

        self.dispatch.send(self.specs, TASK, answered)


def collect(
    specs: Sequence[TargetSpec],
    dispatch: Dispatch,
    keep: Callable[[TargetRecord], TargetRecord] = lambda record: record,
) -> list[TargetRecord]:
    """The facts of every target as workers collected them (no judgement), in `specs`' order;
    a target without an answer is a record with its error. Each record is what `keep` makes
    of it as it arrives (the bundle's EvidenceSpool: its facts' data on disk)."""
    records: dict[int, TargetRecord] = {}
    index = {id(spec): i for i, spec in enumerate(specs)}

    def answered(spec: TargetSpec, result: Mapping[str, Any] | None, error: str | None) -> None:
        if result is None:
            record = _error_record(spec, error)
        else:
            try:
                record = judged_from_json(result, {}).record
            except BadAnswer as exc:  # another auditor version, or a corrupted answer
                record = _error_record(spec, f"the worker's answer is unusable: {exc}")
        records[index[id(spec)]] = keep(record)

    dispatch.send(specs, COLLECT_TASK, answered)
    return [records[i] for i in range(len(specs))]


def _error_record(spec: TargetSpec, reason: str | None) -> TargetRecord:
    now = utc_now()
    return TargetRecord(
        spec.display_name, spec.url, TargetKind.HOST, now, now, error=reason or "no answer"
    )


def _failed(
    profile: LoadedProfile, spec: TargetSpec, reason: str, on_target_done: engine.TargetDone
) -> None:
    record = _error_record(spec, reason)
    variables = {**profile.variables, **spec.variables}
    on_target_done(engine.Judged(record, engine.evaluate(profile, record, variables), variables))


def profile_request(
    profile: LoadedProfile, name: str, overlays: Sequence[str], variables: dict[str, Any]
) -> ProfileRequest:
    """What the workers must load to judge as this run does, with its digest."""
    return ProfileRequest(
        name=name,
        overlays=tuple(overlays),
        variables=variables,
        digest=f"sha256:{document.profile_digest(profile)}",
    )
