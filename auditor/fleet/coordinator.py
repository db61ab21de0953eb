"""The coordinator's side of a distributed run: a TargetSource whose targets workers audit.

Each target goes to the queue of its zone (the default queue without one); each answer is
recorded as it arrives, once, whatever number of times its task was delivered; a target
whose task gets no answer in time, or that the broker cannot take, is an `error` with the
reason. Everything after (recorder, store, reports, gates) is the one-process run's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from auditor import document, engine
from auditor.config import TargetSpec
from auditor.facts import utc_now
from auditor.fleet.app import DEFAULT_QUEUE, TASK, make_app
from auditor.fleet.wire import ProfileRequest, judged_from_json, task_payload
from auditor.model import TargetKind, TargetRecord
from auditor.profiles import LoadedProfile


@dataclass(frozen=True)
class DistributedTargets:
    """Targets audited by `auditor worker` processes reached through `broker`."""

    specs: Sequence[TargetSpec]
    broker: str
    profile: ProfileRequest
    run_id: str
    answer_timeout: float  # seconds a target may take, from sending its task to its answer
    kind: str = "run"

    @property
    def names(self) -> list[str]:
        return [spec.display_name for spec in self.specs]

    def judge(self, profile: LoadedProfile, on_target_done: engine.TargetDone) -> None:
        app = make_app(self.broker)
        pending: dict[str, tuple[TargetSpec, Any]] = {}
        for spec in self.specs:
            try:
                sent = app.send_task(
                    TASK,
                    args=[task_payload(self.run_id, spec, self.profile)],
                    queue=spec.zone or DEFAULT_QUEUE,
                    retry=True,
                    retry_policy={"max_retries": 3, "interval_start": 0.5, "interval_step": 1},
                )
            except Exception as exc:  # the broker cannot be reached: this target is lost
                _failed(profile, spec, f"broker: {type(exc).__name__}: {exc}", on_target_done)
                continue
            pending[sent.id] = (spec, sent)
        self._await(app, profile, pending, on_target_done)

    def _await(
        self,
        app: Any,
        profile: LoadedProfile,
        pending: dict[str, tuple[TargetSpec, Any]],
        on_target_done: engine.TargetDone,
    ) -> None:
        """Record each answer as it arrives (the result backend tells: no polling per task);
        what has no answer after `answer_timeout` is an error."""
        from celery.exceptions import TimeoutError as NoAnswer
        from celery.result import ResultSet

        answers = ResultSet([sent for _, sent in pending.values()], app=app)
        reason = f"no worker answered within {self.answer_timeout:g}s"
        try:
            for task_id, meta in answers.iter_native(timeout=self.answer_timeout, interval=0.2):
                spec, sent = pending.pop(task_id)
                _answered(profile, spec, meta, on_target_done)
                sent.forget()
        except NoAnswer:
            pass
        except Exception as exc:  # the broker went away and did not come back in time
            reason = f"{reason} (broker: {type(exc).__name__}: {exc})"
        for spec, _ in pending.values():
            _failed(profile, spec, reason, on_target_done)


def _answered(
    profile: LoadedProfile,
    spec: TargetSpec,
    meta: Mapping[str, Any],
    on_target_done: engine.TargetDone,
) -> None:
    if meta.get("status") != "SUCCESS":
        _failed(profile, spec, f"the worker failed: {meta.get('result')!r}", on_target_done)
        return
    judged = judged_from_json(meta["result"])
    if judged.record.error and not judged.results:  # refused, or judged by another profile
        variables = {**profile.variables, **spec.variables}
        results = engine.evaluate(profile, judged.record, variables)
        judged = engine.Judged(judged.record, results, variables, judged.audited_by)
    on_target_done(judged)


def _failed(
    profile: LoadedProfile, spec: TargetSpec, reason: str, on_target_done: engine.TargetDone
) -> None:
    now = utc_now()
    record = TargetRecord(spec.display_name, spec.url, TargetKind.HOST, now, now, error=reason)
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
