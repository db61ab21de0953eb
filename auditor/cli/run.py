"""`auditor run`: audit targets with a profile, write reports, gate on the score."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import yaml

from auditor import runner
from auditor.config import (
    MAX_TIMEOUT,
    MIB,
    Gates,
    Setting,
    TargetSpec,
    connection_settings,
    setting_value,
)
from auditor.errors import ExitStatus, InputError, InventoryError
from auditor.inventory import load_inventory
from auditor.model import Severity
from auditor.profiles import DEFAULT_PROFILE, LoadedProfile, variable_problem
from auditor.recorder import RecordOptions
from auditor.regularfile import exists
from auditor.reporters import parse_requests
from auditor.runner import LiveTargets, RunPlan
from auditor.views import load_named
from auditor.waivers import DEFAULT_WARNING_DAYS
from auditor.yamlsrc import parse_value, yaml_problem

if TYPE_CHECKING:  # Celery is imported by distributed runs only
    from auditor.fleet.coordinator import Dispatch

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_REPORTS = ("json:auditor-results.json", "html:auditor-report.html")


def _parse_var(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    shown = text if len(text) <= 80 else text[:77] + "..."
    if not sep or not key:
        raise InputError(f"bad --var {shown!r}: expected NAME=VALUE (VALUE is YAML)")
    try:
        return key, parse_value(raw)
    except yaml.YAMLError as exc:
        problem = yaml_problem(exc)[0].replace("invalid YAML: ", "")
        raise InputError(f"bad --var {shown!r}: the value is not valid YAML: {problem}") from None


def _options(*options: Callable[[F], F]) -> Callable[[F], F]:
    """Several click options as one decorator, for flags that several commands share."""

    def apply(func: F) -> F:
        for option in reversed(options):
            func = option(func)
        return func

    return apply


def _setting_option(name: str, setting: Setting, default: Any) -> Callable[[F], F]:
    """The click option of one connection setting, from its declaration on TargetSpec."""
    kwargs: dict[str, Any] = {"help": setting.help}
    if setting.kind == "switch":
        kwargs["is_flag"] = True
    elif setting.kind == "seconds":
        kwargs.update(
            default=default, show_default=True, type=click.FloatRange(min=0.1, max=MAX_TIMEOUT)
        )
    elif setting.kind == "mebibytes":
        kwargs.update(default=default // MIB, show_default=True, type=click.IntRange(min=1))
    elif setting.is_path:
        kwargs.update(type=click.Path(path_type=Path), multiple=setting.kind == "paths")
    elif setting.kind == "pairs":
        kwargs.update(multiple=True, metavar="KEY=VALUE")
    return click.option(*setting.flags, name, **kwargs)


# Which targets, and how to reach them: `auditor run`, `collect` and `schedule` (through run).
target_options = _options(
    click.option(
        "-t",
        "--target",
        "targets",
        multiple=True,
        metavar="URL",
        help="local://, ssh://[user@]host[:port]. Repeatable. Default: local://",
    ),
    click.option(
        "-i", "--inventory", type=click.Path(path_type=Path), help="YAML inventory of hosts."
    ),
    click.option(
        "--import",
        "imports",
        multiple=True,
        metavar="TOOL:FILE",
        help="A vulnerability scanner's JSON report to judge (trivy:FILE, grype:FILE). Repeatable.",
    ),
    *(_setting_option(*declared) for declared in connection_settings() if declared[1].flags),
)

# The profile and how to change it.
profile_options = _options(
    click.option(
        "-p",
        "--profile",
        default=DEFAULT_PROFILE,
        envvar="AUDITOR_PROFILE",
        show_default=True,
        help="Shipped profile id, or a profile directory.",
    ),
    click.option(
        "--overlay",
        "overlays",
        multiple=True,
        type=click.Path(path_type=Path),
        help="Overlay file changing the profile. Repeatable.",
    ),
    click.option(
        "--var",
        "variables",
        multiple=True,
        metavar="NAME=VALUE",
        help="Set a profile variable (VALUE is YAML). Repeatable.",
    ),
)

# Reports and gates: `auditor run` and `auditor evaluate`.
report_options = _options(
    click.option(
        "-r",
        "--report",
        "reports",
        multiple=True,
        metavar="FORMAT:PATH",
        help="Write a report; PATH '-' is stdout. Repeatable. "
        f"Default: {', '.join(DEFAULT_REPORTS)}",
    ),
    click.option(
        "--fail-under",
        type=click.FloatRange(0, 100),
        metavar="SCORE",
        help="Exit 1 when the overall score is below SCORE.",
    ),
    click.option(
        "--fail-on",
        type=click.Choice([s.value for s in Severity]),
        help="Exit 1 when anything of this severity or worse fails.",
    ),
    click.option(
        "--min-coverage",
        type=click.FloatRange(0, 100),
        metavar="PCT",
        help="Exit 1 when coverage is below PCT percent.",
    ),
    click.option("-q", "--quiet", is_flag=True, help="No summary and no progress bar."),
)

# The store, waivers, attestations, metrics and the webhook: `auditor run` and `evaluate`.
record_options = _options(
    click.option(
        "--db",
        envvar="AUDITOR_DB",
        metavar="URL",
        help="Evidence store: a SQLAlchemy URL (postgresql+psycopg://user@host/db) or a "
        "SQLite file. Default: auditor.db in the XDG data directory.",
    ),
    click.option("--no-store", is_flag=True, help="Do not store this run."),
    click.option(
        "--waivers",
        "waivers_file",
        type=click.Path(path_type=Path),
        help="Waiver file (YAML): accepted risks with justification and expiry.",
    ),
    click.option(
        "--attestations",
        "attestations_file",
        type=click.Path(path_type=Path),
        help="Attestation file (YAML): answers for manual controls.",
    ),
    click.option(
        "--warn-expiring",
        "warning_days",
        default=DEFAULT_WARNING_DAYS,
        show_default=True,
        type=click.IntRange(0, 3650),
        metavar="DAYS",
        help="Warn about waivers and attestations expiring within DAYS.",
    ),
    click.option(
        "--prometheus-file",
        type=click.Path(path_type=Path),
        help="Write scores in Prometheus text format (node-exporter textfile collector).",
    ),
    click.option("--pushgateway", metavar="URL", help="Push scores to a Prometheus Pushgateway."),
    click.option(
        "--pushgateway-job",
        default="auditor",
        show_default=True,
        help="Job name on the Pushgateway (one per scheduled job).",
    ),
    click.option(
        "--webhook",
        metavar="URL",
        envvar="AUDITOR_WEBHOOK",
        help="POST a JSON notice here when the score drops or a critical check newly fails.",
    ),
)


broker_options = _options(
    click.option(
        "--broker",
        envvar="AUDITOR_BROKER",
        metavar="URL",
        help="Hand each target to `auditor worker` processes through this Celery broker "
        "(redis://, rediss://, amqp://) instead of doing the work here.",
    ),
    click.option(
        "--answer-timeout",
        default=3600.0,
        show_default=True,
        type=click.FloatRange(min=1),
        metavar="SECONDS",
        help="With --broker: how long a target may wait for a worker's answer before it is "
        "an error.",
    ),
)


def record_options_from(flags: dict[str, Any]) -> RecordOptions:
    """RecordOptions from the parameters `record_options` added (removed from `flags`)."""
    return RecordOptions(
        store=not flags.pop("no_store"),
        db=flags.pop("db"),
        waivers=flags.pop("waivers_file"),
        attestations=flags.pop("attestations_file"),
        warning_days=flags.pop("warning_days"),
        prometheus_file=flags.pop("prometheus_file"),
        pushgateway=flags.pop("pushgateway"),
        pushgateway_job=flags.pop("pushgateway_job"),
        webhook=flags.pop("webhook"),
    )


def target_specs(flags: dict[str, Any]) -> list[TargetSpec]:
    """The targets `target_options` name (their parameters are removed from `flags`), each
    name once. With none: this host, and its Docker daemon when one answers at the default
    socket."""
    targets, inventory, imports = flags.pop("targets"), flags.pop("inventory"), flags.pop("imports")
    settings = {
        name: setting_value(setting, flags.pop(name))
        for name, setting, _ in connection_settings()
        if setting.flags
    }
    base = TargetSpec(url="local://", **{k: v for k, v in settings.items() if v is not None})
    specs = [spec for spec in (replace(base, url=url) for url in targets) if spec.address]
    if inventory is not None:
        specs += load_inventory(inventory, base)
    specs += [replace(base, url=_import_url(text)) for text in imports]
    if not specs:
        from auditor.targets.docker import LOCAL_DAEMON_URL, local_daemon_answers

        specs = [base]
        if local_daemon_answers():
            specs.append(replace(base, url=LOCAL_DAEMON_URL))
    names = [s.display_name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"target named twice: {duplicates[0]}")
    _check_scanner_reports(specs)
    return specs


def _check_scanner_reports(specs: list[TargetSpec]) -> None:
    """A scanner report the user gave is input: one that cannot be read, or is not the tool's
    report, stops the run (exit 2) rather than becoming results that a gate could pass."""
    from auditor.targets.scanreport import read_report

    for spec in specs:
        tool, _, location = spec.url.partition("://")
        if tool in ("trivy", "grype"):
            read_report(tool, Path(location).expanduser())


def _import_url(text: str) -> str:
    """--import trivy:FILE -> trivy://FILE."""
    tool, sep, path = text.partition(":")
    if not sep or not path or tool not in ("trivy", "grype"):
        raise InputError(f"bad --import {text!r}: expected trivy:FILE or grype:FILE")
    if not exists(Path(path).expanduser()):  # an input file, like --waivers: exit 2, not 3
        raise InputError(f"--import {text}: no such file")
    return f"{tool}://{path}"


def prepared_profile(
    name: str, overlays: tuple[Path, ...], variables: dict[str, Any]
) -> LoadedProfile:
    """The profile with overlays and `--var` values applied."""
    loaded = load_named(name, overlays)
    unknown = sorted(set(variables) - set(loaded.variables))
    if unknown:
        raise InputError(f"unknown profile variable {unknown[0]!r}", item=unknown[0])
    for key, value in variables.items():
        if problem := variable_problem(value, loaded.variables[key]):
            raise InputError(f"--var {key}: {problem}")
    if variables:
        loaded = replace(loaded, variables={**loaded.variables, **variables})
    return loaded


@click.command()
@target_options
@profile_options
@report_options
@click.option(
    "-c",
    "--concurrency",
    default=8,
    show_default=True,
    type=click.IntRange(1, 256),
    envvar="AUDITOR_CONCURRENCY",
    help="Targets audited at once.",
)
@click.option(
    "--workers",
    type=click.IntRange(0, 64),
    envvar="AUDITOR_WORKERS",
    help="Other processes that share the judging of a large target (thousands of subjects); "
    "0 for none. Default: one per usable CPU core but one.",
)
@broker_options
@record_options
def run(**flags: Any) -> ExitStatus:
    """Audit targets with a profile, write reports, and gate on the score.

    Every run is stored (SQLite in the XDG data directory unless --db or --no-store) as
    each target finishes; Ctrl-C or SIGTERM keeps what finished and marks the run incomplete.
    """
    requests = parse_requests(flags.pop("reports") or DEFAULT_REPORTS)
    specs = target_specs(flags)
    name, overlays, variables = flags.pop("profile"), flags.pop("overlays"), flags.pop("variables")
    loaded = prepared_profile(name, overlays, parse_vars(variables))
    check_target_variables(loaded, specs)
    quiet = flags.pop("quiet")
    plan = RunPlan(
        reports=requests,
        record=record_options_from(flags),
        gates=gates_from(flags),
        quiet=quiet,
        progress=not quiet and sys.stderr.isatty(),
    )
    from auditor.collectors.image_layers import cache_url

    cache = cache_url(stored=plan.record.store, db=plan.record.db)
    specs = [replace(spec, layer_cache=cache) for spec in specs]
    concurrency, workers = flags.pop("concurrency"), flags.pop("workers")
    broker, answer_timeout = flags.pop("broker"), flags.pop("answer_timeout")
    source: runner.TargetSource = LiveTargets(specs, concurrency=concurrency, workers=workers)
    if broker:
        from auditor.fleet.coordinator import DistributedTargets

        dispatch = broker_dispatch(
            loaded, broker, answer_timeout, plan.run_id, name, overlays, variables
        )
        source = DistributedTargets(specs, dispatch)
    return runner.execute(loaded, source, plan, say)


def broker_dispatch(
    loaded: LoadedProfile,
    broker: str,
    answer_timeout: float,
    run_id: str,
    name: str,
    overlays: tuple[Path, ...],
    variables: tuple[str, ...],
) -> Dispatch:
    """How targets go to the workers: the broker, and the profile they must judge with."""
    from auditor.fleet.coordinator import Dispatch, profile_request

    request = profile_request(loaded, name, [str(o) for o in overlays], parse_vars(variables))
    return Dispatch(broker, request, run_id, answer_timeout)


def check_target_variables(loaded: LoadedProfile, specs: Iterable[TargetSpec]) -> None:
    """Inventory `vars` must name the profile's variables, with values of their kind."""
    for spec in specs:
        for key, value in spec.variables.items():
            problem = (
                variable_problem(value, loaded.variables[key])
                if key in loaded.variables
                else "unknown profile variable"
            )
            if problem:
                raise InventoryError(
                    f"vars: {key}: {problem}", path=spec.source, item=spec.display_name
                )


def gates_from(flags: dict[str, Any]) -> Gates:
    """Gates from the parameters `report_options` added (removed from `flags`)."""
    fail_on = flags.pop("fail_on")
    return Gates(
        flags.pop("fail_under"), Severity(fail_on) if fail_on else None, flags.pop("min_coverage")
    )


def parse_vars(texts: tuple[str, ...]) -> dict[str, Any]:
    """`--var NAME=VALUE` options as a dict (VALUE is YAML)."""
    return dict(_parse_var(text) for text in texts)


def say(line: str) -> None:
    """One line for the operator, on stderr."""
    click.echo(line, err=True)
