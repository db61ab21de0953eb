"""The worker's side of a distributed run: audit one target with this machine's credentials.

A task is judged only with exactly the run's profile and variables: the worker loads the
profile and overlays the task names from its own installation, applies the task's
variables, and compares the digest with the task's; a mismatch is an error for that target,
never a judgement with another profile. A worker may be limited to targets whose URL
matches its `--allow` patterns, so that whoever can write to the broker cannot point it at
arbitrary hosts.
"""

from __future__ import annotations

import fnmatch
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

from auditor import document, engine
from auditor.config import TargetSpec
from auditor.errors import AuditorError
from auditor.fleet.app import COLLECT_TASK, TASK, make_app
from auditor.fleet.wire import (
    error_judged,
    judged_to_json,
    profile_request,
    spec_from_payload,
)
from auditor.profiles import LoadedProfile
from auditor.views import load_named


@dataclass(frozen=True)
class WorkerSettings:
    """What a worker brings of its own: credentials and trust (as a TargetSpec's fields),
    the targets it accepts, and its name in the results."""

    local: TargetSpec
    allow: tuple[str, ...] = ()  # URL patterns (fnmatch); empty: any target
    name: str = ""


@cache
def _profile(name: str, overlays: tuple[str, ...], variables: str) -> LoadedProfile:
    """The profile as this worker loads it, with the run's variables (a JSON text: hashable)."""
    import json

    loaded = load_named(name, tuple(Path(o) for o in overlays))
    return replace(loaded, variables={**loaded.variables, **json.loads(variables)})


def audit(payload: Mapping[str, Any], settings: WorkerSettings) -> dict[str, Any]:
    """Run one audit task: the judged target, or an error record saying why not."""
    accepted = _accepted(payload, settings)
    if isinstance(accepted, str):
        return error_judged(payload, accepted)
    spec, profile = accepted
    record = engine.collect(profile, spec)
    variables = {**profile.variables, **spec.variables}
    results = engine.evaluate(profile, record, variables)
    return judged_to_json(engine.Judged(record, results, variables), settings.name)


def collect(payload: Mapping[str, Any], settings: WorkerSettings) -> dict[str, Any]:
    """Run one collect task: the facts the run's profile needs, unjudged, or an error record
    saying why not."""
    accepted = _accepted(payload, settings)
    if isinstance(accepted, str):
        return error_judged(payload, accepted)
    spec, profile = accepted
    record = engine.collect(profile, spec)
    return judged_to_json(engine.Judged(record, [], dict(spec.variables)), settings.name)


def _accepted(
    payload: Mapping[str, Any], settings: WorkerSettings
) -> tuple[TargetSpec, LoadedProfile] | str:
    """The target and the run's exact profile, or why this worker does not take the task."""
    import json

    spec = spec_from_payload(payload, settings.local)
    if settings.allow and not any(fnmatch.fnmatchcase(spec.url, p) for p in settings.allow):
        return f"refused by worker {settings.name}: {spec.url} matches no --allow pattern"
    request = profile_request(payload)
    try:
        profile = _profile(
            request.name, request.overlays, json.dumps(request.variables, sort_keys=True)
        )
    except AuditorError as exc:
        return f"worker {settings.name} cannot load the profile: {exc}"
    digest = document.profile_digest(profile)
    if f"sha256:{digest}" != request.digest and digest != request.digest:
        return (
            f"worker {settings.name} judges with another profile: digest sha256:{digest[:12]} "
            f"is not the run's {request.digest.removeprefix('sha256:')[:12]} (same auditor "
            "version, profile files and overlays on every worker)"
        )
    return spec, profile


def worker_app(broker: str, settings: WorkerSettings, visibility_timeout: float) -> Any:
    """The Celery app of `auditor worker`, with the audit task bound to `settings`."""
    app = make_app(broker, visibility_timeout=visibility_timeout)

    @app.task(name=TASK, acks_late=True, reject_on_worker_lost=True)  # type: ignore[untyped-decorator]
    def audit_task(payload: dict[str, Any]) -> dict[str, Any]:
        return audit(payload, settings)

    @app.task(name=COLLECT_TASK, acks_late=True, reject_on_worker_lost=True)  # type: ignore[untyped-decorator]
    def collect_task(payload: dict[str, Any]) -> dict[str, Any]:
        return collect(payload, settings)

    return app


def default_name() -> str:
    return socket.gethostname()


def start(
    broker: str,
    settings: WorkerSettings,
    queues: Sequence[str],
    concurrency: int,
    visibility_timeout: float,
) -> None:
    """Serve audit tasks from `queues` until stopped (SIGTERM: finish the current tasks)."""
    from celery.signals import worker_ready

    app = worker_app(broker, settings, visibility_timeout)

    def ready(**_: Any) -> None:
        print(  # noqa: T201 - the operator's (and the tests') sign that tasks are taken
            f"auditor worker {settings.name}: ready, serving {', '.join(queues)}",
            file=sys.stderr,
            flush=True,
        )

    worker_ready.connect(ready, weak=False)
    worker = app.Worker(
        quiet=True,
        hostname=f"auditor@{settings.name}",
        queues=list(queues),
        concurrency=concurrency,
        pool="threads",
        loglevel="WARNING",
        without_mingle=True,
        without_gossip=True,
    )
    worker.start()
