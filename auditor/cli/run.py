"""`auditor run`: audit targets with a profile, write reports, gate on the score."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import yaml

from auditor import cyclegc, engine
from auditor.config import (
    DEFAULT_COMMAND_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT,
    MAX_TIMEOUT,
    Gates,
    RunConfig,
    TargetSpec,
)
from auditor.errors import ExitStatus, InputError, InventoryError
from auditor.inventory import load_inventory
from auditor.model import Result, Severity, Status, TargetRecord
from auditor.profiles import DEFAULT_PROFILE, LoadedProfile, load_profile, variable_problem
from auditor.recorder import Recorder, RecordOptions
from auditor.reporters import ReportRequest, write
from auditor.targets import scheme_of
from auditor.waivers import DEFAULT_WARNING_DAYS
from auditor.yamlsrc import parse_value, yaml_problem

T = TypeVar("T")
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
    click.option("-u", "--user", help="SSH user (default: URL, ~/.ssh/config, then $USER)."),
    click.option(
        "--identity",
        "identities",
        multiple=True,
        type=click.Path(path_type=Path),
        help="SSH private key file. Repeatable. Default: ssh-agent and ~/.ssh keys.",
    ),
    click.option(
        "--sudo", is_flag=True, help="Run the host script through `sudo -n` (never prompts)."
    ),
    click.option(
        "--known-hosts",
        type=click.Path(path_type=Path),
        help="known_hosts file (default ~/.ssh/known_hosts).",
    ),
    click.option(
        "--accept-new-host-keys",
        is_flag=True,
        help="Trust unknown SSH host keys on first use (a changed key is still refused).",
    ),
    click.option(
        "--ssh-config",
        type=click.Path(path_type=Path),
        help="SSH client config (default ~/.ssh/config).",
    ),
    click.option(
        "--tls-ca",
        type=click.Path(path_type=Path),
        help="CA bundle that signed a tcp:// Docker daemon's certificate (verification is on).",
    ),
    click.option(
        "--tls-cert", type=click.Path(path_type=Path), help="Client certificate for Docker TLS."
    ),
    click.option("--tls-key", type=click.Path(path_type=Path), help="Client key for Docker TLS."),
    click.option(
        "--connect-timeout",
        default=DEFAULT_CONNECT_TIMEOUT,
        show_default=True,
        type=click.FloatRange(min=0.1, max=MAX_TIMEOUT),
        help="Seconds to connect to a target.",
    ),
    click.option(
        "--command-timeout",
        default=DEFAULT_COMMAND_TIMEOUT,
        show_default=True,
        type=click.FloatRange(min=0.1, max=MAX_TIMEOUT),
        help="Seconds for the host script.",
    ),
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


def target_specs(
    targets: tuple[str, ...],
    inventory: Path | None,
    user: str | None,
    identities: tuple[Path, ...],
    sudo: bool,
    known_hosts: Path | None,
    accept_new_host_keys: bool,
    ssh_config: Path | None,
    connect_timeout: float,
    command_timeout: float,
    imports: tuple[str, ...] = (),
    tls: tuple[Path | None, Path | None, Path | None] = (None, None, None),
) -> list[TargetSpec]:
    """The targets `target_options` name, each name once. With none: this host, and its
    Docker daemon when one answers at the default socket."""
    base = TargetSpec(
        url="local://",
        user=user,
        identity_files=tuple(str(p) for p in identities),
        sudo=sudo,
        known_hosts=str(known_hosts) if known_hosts else None,
        accept_new_host_keys=accept_new_host_keys,
        ssh_config=str(ssh_config) if ssh_config else None,
        connect_timeout=connect_timeout,
        command_timeout=command_timeout,
        tls_ca=str(tls[0]) if tls[0] else None,
        tls_cert=str(tls[1]) if tls[1] else None,
        tls_key=str(tls[2]) if tls[2] else None,
    )
    specs = [replace(base, url=url) for url in targets if scheme_of(url)]
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
    return f"{tool}://{path}"


def prepared_profile(
    name: str, overlays: tuple[Path, ...], variables: dict[str, Any]
) -> LoadedProfile:
    """The profile with overlays and `--var` values applied."""
    loaded = load_profile(name, overlays)
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
@record_options
@click.option(
    "--kubeconfig",
    type=click.Path(path_type=Path),
    help="kubeconfig for k8s:// targets (default: $KUBECONFIG, then ~/.kube/config).",
)
def run(
    targets: tuple[str, ...],
    inventory: Path | None,
    profile: str,
    overlays: tuple[Path, ...],
    variables: tuple[str, ...],
    reports: tuple[str, ...],
    concurrency: int,
    workers: int | None,
    user: str | None,
    identities: tuple[Path, ...],
    sudo: bool,
    known_hosts: Path | None,
    accept_new_host_keys: bool,
    ssh_config: Path | None,
    connect_timeout: float,
    command_timeout: float,
    imports: tuple[str, ...],
    tls_ca: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    fail_under: float | None,
    fail_on: str | None,
    min_coverage: float | None,
    quiet: bool,
    kubeconfig: Path | None = None,
    **record_flags: Any,
) -> ExitStatus:
    """Audit targets with a profile, write reports, and gate on the score.

    Every run is stored (SQLite in the XDG data directory unless --db or --no-store) as
    each target finishes; Ctrl-C or SIGTERM keeps what finished and marks the run incomplete.
    """
    requests = [ReportRequest.parse(r) for r in (reports or DEFAULT_REPORTS)]
    specs = target_specs(
        targets,
        inventory,
        user,
        identities,
        sudo,
        known_hosts,
        accept_new_host_keys,
        ssh_config,
        connect_timeout,
        command_timeout,
        imports,
        (tls_ca, tls_cert, tls_key),
    )
    if kubeconfig is not None:
        specs = [s if s.kubeconfig else replace(s, kubeconfig=str(kubeconfig)) for s in specs]
    config = RunConfig(
        targets=tuple(specs),
        profile=profile,
        overlays=overlays,
        concurrency=concurrency,
        workers=workers,
        gates=Gates(fail_under, Severity(fail_on) if fail_on else None, min_coverage),
        variables=dict(_parse_var(v) for v in variables),
        progress=not quiet and sys.stderr.isatty(),
    )
    return _run(config, requests, quiet=quiet, record=record_options_from(record_flags))


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


def _run(
    config: RunConfig,
    requests: list[ReportRequest],
    *,
    quiet: bool,
    record: RecordOptions | None = None,
) -> ExitStatus:
    loaded = prepared_profile(config.profile, config.overlays, config.variables)
    check_target_variables(loaded, config.targets)
    names = [spec.display_name for spec in config.targets]
    recorder = Recorder(loaded, names, record or RecordOptions())
    try:
        progress = _progress(len(config.targets)) if config.progress else nullcontext(None)
        finished = None
        with progress as bar, _signals_as_interrupt() as caught:

            def done(target: TargetRecord, results: list[Result]) -> None:
                recorder.target_done(target, results)
                if bar is not None:
                    bar[0].advance(bar[1])

            try:
                with cyclegc.settled():
                    finished = _in_background(
                        lambda: engine.run(
                            loaded,
                            config.targets,
                            concurrency=config.concurrency,
                            workers=config.workers,
                            on_target_done=done,
                        )
                    )
            except KeyboardInterrupt:
                finished = None
        if finished is None:
            _interrupted(recorder, requests, quiet=quiet, signum=caught.get("signal"))
        doc = recorder.complete(finished)
        finish_reports(recorder, doc, requests, quiet=quiet)
        return _exit_status(doc, config.gates)
    finally:
        recorder.close()


def finish_reports(
    recorder: Recorder, doc: dict[str, Any], requests: list[ReportRequest], *, quiet: bool
) -> None:
    """Reports, warnings, metrics and the webhook of a finished run; a store error is raised
    after the reports are written (the audit itself is not lost)."""
    write_reports(doc, requests, quiet=quiet)
    for line in recorder.warnings() + recorder.export(doc):
        click.echo(f"auditor: warning: {line}", err=True)
    if recorder.store_error is not None:
        raise recorder.store_error
    if recorder.writer is not None and not quiet:
        click.echo(f"stored run {recorder.run_id} in {recorder.writer.opened()}", err=True)


def write_reports(doc: dict[str, Any], requests: list[ReportRequest], *, quiet: bool) -> None:
    to_stdout = any(r.path == "-" for r in requests)
    for request in requests:
        write(request, doc)
    if not quiet and not to_stdout:
        write(ReportRequest("terminal", "-"), doc)
        for request in requests:
            click.echo(f"wrote {request.format} report: {request.path}", err=True)


def _interrupted(
    recorder: Recorder, requests: list[ReportRequest], *, quiet: bool, signum: int | None
) -> NoReturn:
    """Keep what finished, write the reports of the incomplete run, and leave at once.

    os._exit: targets still in flight run in worker threads that Python cannot stop, and a
    normal exit would wait for every one of them (and the queued ones) to finish.
    """
    try:
        doc = recorder.interrupted()
        kept = len(doc["targets"])
        write_reports(doc, requests, quiet=True)
        stored = f" in run {recorder.run_id}" if recorder.stored() else ""
        click.echo(
            f"auditor: interrupted: kept {kept} of {len(recorder.names)} target(s){stored} "
            "(marked incomplete)",
            err=True,
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


def _in_background(work: Callable[[], T]) -> T:
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


def _progress(total: int) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    class _Bar:
        def __enter__(self) -> tuple[Progress, Any]:
            self.progress = Progress(
                "auditing",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self.progress.__enter__()
            return self.progress, self.progress.add_task("targets", total=total)

        def __exit__(self, *exc: object) -> None:
            self.progress.__exit__(None, None, None)

    return _Bar()


def _exit_status(doc: dict[str, Any], gates: Gates) -> ExitStatus:
    """3 when no target could be audited, 1 when a gate failed, else 0."""
    if doc["targets"] and all(t["error"] for t in doc["targets"]):
        for target in doc["targets"]:
            click.echo(f"auditor: {target['name']}: {target['error']}", err=True)
        return ExitStatus.NO_TARGET
    overall = doc["score"]["overall"]
    failed: list[str] = []
    if gates.fail_under is not None and (overall["value"] or 0) < gates.fail_under:
        failed.append(f"score {overall['value']} is below {gates.fail_under:g}")
    if gates.min_coverage is not None and (overall["coverage"] or 0) < gates.min_coverage:
        failed.append(f"coverage {overall['coverage']}% is below {gates.min_coverage:g}%")
    if gates.fail_on is not None:
        worst = [
            r
            for r in doc["results"]
            if r["status"] == Status.FAIL and Severity(r["severity"]).rank >= gates.fail_on.rank
        ]
        if worst:
            failed.append(f"{len(worst)} failing result(s) of severity {gates.fail_on} or worse")
    for reason in failed:
        click.echo(f"auditor: gate failed: {reason}", err=True)
    return ExitStatus.GATE_FAILED if failed else ExitStatus.OK
