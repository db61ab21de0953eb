"""`auditor worker`: audit the targets a distributed run hands out, with this machine's
credentials."""

from __future__ import annotations

from typing import Any

import click

from auditor.cli.run import _setting_option
from auditor.config import TargetSpec, connection_settings, setting_value
from auditor.errors import ExitStatus, InputError
from auditor.fleet.app import DEFAULT_QUEUE


def _own_settings() -> list[Any]:
    """The connection settings a worker brings itself: credentials and trust, never sent."""
    return [
        _setting_option(name, setting, default)
        for name, setting, default in connection_settings()
        if setting.flags and not setting.travels
    ]


def _with_own_settings(func: Any) -> Any:
    for option in reversed(_own_settings()):
        func = option(func)
    return func


@click.command()
@click.option(
    "--broker",
    required=True,
    envvar="AUDITOR_BROKER",
    metavar="URL",
    help="Celery broker: redis://[:PASSWORD@]HOST:PORT/DB, rediss://..., amqp://...",
)
@click.option(
    "--queues",
    default=DEFAULT_QUEUE,
    show_default=True,
    metavar="ZONE,...",
    help=f"The zones (queues) this worker serves; targets without a zone go to {DEFAULT_QUEUE!r}.",
)
@click.option(
    "-c",
    "--concurrency",
    default=4,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Targets audited at once.",
)
@click.option(
    "--allow",
    "allow",
    multiple=True,
    metavar="PATTERN",
    help="Audit only targets whose URL matches a pattern ('ssh://*.dc1.example'). "
    "Repeatable. Default: any target.",
)
@click.option("--name", metavar="NAME", help="This worker's name in results (default: hostname).")
@click.option(
    "--visibility-timeout",
    default=3600.0,
    show_default=True,
    type=click.FloatRange(min=1),
    metavar="SECONDS",
    help="A task a worker took and never finished (it died) is delivered again "
    "after this long (Redis).",
)
@click.option(
    "--db",
    envvar="AUDITOR_DB",
    metavar="URL",
    help="Store whose image layer cache this worker shares with the fleet (the run's --db). "
    "Default: this user's own cache.",
)
@_with_own_settings
def worker(
    broker: str,
    queues: str,
    concurrency: int,
    allow: tuple[str, ...],
    name: str | None,
    visibility_timeout: float,
    db: str | None,
    **own: Any,
) -> ExitStatus:
    """Serve audit tasks from a Celery broker until stopped (SIGTERM finishes what runs).

    Tasks carry a target's URL and non-secret settings only: this worker uses its own keys,
    known_hosts, ssh_config, TLS files and kubeconfig, and judges only with exactly the
    run's profile (its digest is checked).
    """
    from auditor.collectors.image_layers import cache_url
    from auditor.fleet.worker import WorkerSettings, default_name, start

    zones = [q.strip() for q in queues.split(",") if q.strip()]
    if not zones:
        raise InputError(f"bad --queues {queues!r}: name at least one queue")
    given = {
        field: setting_value(setting, own.pop(field))
        for field, setting, _ in connection_settings()
        if field in own
    }
    local = TargetSpec(
        url="local://",
        layer_cache=cache_url(stored=db is not None, db=db),
        **{k: v for k, v in given.items() if v is not None},
    )
    settings = WorkerSettings(local=local, allow=allow, name=name or default_name())
    start(broker, settings, zones, concurrency, visibility_timeout)
    return ExitStatus.OK
