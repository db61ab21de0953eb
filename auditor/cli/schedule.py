"""`auditor schedule --cron EXPR [run options]`: run an audit on a schedule, until stopped."""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

import click

from auditor.errors import ExitStatus
from auditor.redact import data_home

_SECRET_OPTIONS = ("--db", "--webhook", "--pushgateway")  # URLs that may carry credentials


def _shown(args: tuple[str, ...]) -> str:
    """The run options for the log, with URLs that may hold credentials masked."""
    shown, hide = [], False
    for arg in args:
        name = arg.split("=", 1)[0]
        if hide:
            shown.append("***")
        elif name in _SECRET_OPTIONS and "=" in arg:
            shown.append(f"{name}=***")
        else:
            shown.append(arg)
        hide = arg in _SECRET_OPTIONS
    return " ".join(shown)


def _log(message: str) -> None:
    stamp = datetime.now().astimezone().isoformat(timespec="seconds")
    click.echo(f"{stamp} auditor schedule: {message}", err=True)


@click.command(context_settings={"ignore_unknown_options": True})
@click.option(
    "--cron",
    required=True,
    metavar="EXPR",
    help="When to run, in local time: 5 cron fields ('0 2 * * *'), or 6 with seconds last.",
)
@click.option(
    "--jitter",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0),
    metavar="SECONDS",
    help="Start each run up to SECONDS after its time (spreads a fleet's load).",
)
@click.option(
    "--max-runs", type=click.IntRange(1), metavar="N", help="Stop after N runs (default: never)."
)
@click.option(
    "--lock",
    "lock_path",
    type=click.Path(path_type=Path),
    help="Lock file held during a run, so two schedulers of one job never overlap "
    "(default: one per job under the XDG data directory).",
)
@click.option(
    "--stop-timeout",
    default=120.0,
    show_default=True,
    type=click.FloatRange(0),
    metavar="SECONDS",
    help="On SIGTERM, how long a running audit gets to store what it has.",
)
@click.argument("run_args", nargs=-1, type=click.UNPROCESSED, metavar="[RUN OPTIONS]...")
def schedule(
    cron: str,
    jitter: float,
    max_runs: int | None,
    lock_path: Path | None,
    stop_timeout: float,
    run_args: tuple[str, ...],
) -> ExitStatus:
    """Run `auditor run [RUN OPTIONS]` at every time of a cron schedule, one run at a time.

    Every run is stored (--db / AUDITOR_DB, default SQLite); SIGTERM stops the scheduler
    after the running audit has stored what it finished.
    """
    from auditor.cli.run import run
    from auditor.schedule import Job, ScheduleError, Scheduler, parse_cron, run_argv

    parse_cron(cron)
    if "--no-store" in run_args:
        raise ScheduleError("scheduled runs are always stored: drop --no-store")
    # Bad run options fail now, not at 2 a.m.
    run.make_context("auditor run", list(run_args))
    if lock_path is None:
        digest = hashlib.sha256("\0".join(run_args).encode()).hexdigest()[:16]
        lock_path = data_home() / "locks" / f"schedule-{digest}.lock"
    job = Job(
        cron=cron,
        argv=run_argv(run_args),
        jitter=jitter,
        max_runs=max_runs,
        lock_path=lock_path,
        stop_timeout=stop_timeout,
    )
    _log(f"'{cron}': auditor run {_shown(run_args)}".rstrip())
    Scheduler(job, _log).serve()
    return ExitStatus.OK
