"""`auditor run`: audit targets with a profile, write reports, gate on the score."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
import yaml

from auditor import document, engine
from auditor.config import (
    DEFAULT_COMMAND_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT,
    Gates,
    RunConfig,
    TargetSpec,
)
from auditor.errors import ExitStatus, InputError
from auditor.inventory import load_inventory
from auditor.model import Result, Severity, Status, TargetRecord
from auditor.profiles import DEFAULT_PROFILE, load_profile
from auditor.reporters import ReportRequest, write
from auditor.targets import scheme_of

DEFAULT_REPORTS = ("json:auditor-results.json",)


def _parse_var(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise InputError(f"bad --var {text!r}: expected NAME=VALUE (VALUE is YAML)")
    try:
        return key, yaml.safe_load(raw)
    except yaml.YAMLError:
        raise InputError(f"bad --var {text!r}: the value is not valid YAML") from None


@click.command()
@click.option(
    "-t",
    "--target",
    "targets",
    multiple=True,
    metavar="URL",
    help="local://, ssh://[user@]host[:port]. Repeatable. Default: local://",
)
@click.option("-i", "--inventory", type=click.Path(path_type=Path), help="YAML inventory of hosts.")
@click.option(
    "-p",
    "--profile",
    default=DEFAULT_PROFILE,
    envvar="AUDITOR_PROFILE",
    show_default=True,
    help="Shipped profile id, or a profile directory.",
)
@click.option(
    "--overlay",
    "overlays",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Overlay file changing the profile. Repeatable.",
)
@click.option(
    "--var",
    "variables",
    multiple=True,
    metavar="NAME=VALUE",
    help="Set a profile variable (VALUE is YAML). Repeatable.",
)
@click.option(
    "-r",
    "--report",
    "reports",
    multiple=True,
    metavar="FORMAT:PATH",
    help=f"Write a report; PATH '-' is stdout. Repeatable. Default: {', '.join(DEFAULT_REPORTS)}",
)
@click.option(
    "-c",
    "--concurrency",
    default=8,
    show_default=True,
    type=click.IntRange(1, 256),
    envvar="AUDITOR_CONCURRENCY",
    help="Targets audited at once.",
)
@click.option("-u", "--user", help="SSH user (default: URL, ~/.ssh/config, then $USER).")
@click.option(
    "--identity",
    "identities",
    multiple=True,
    type=click.Path(path_type=Path),
    help="SSH private key file. Repeatable. Default: ssh-agent and ~/.ssh keys.",
)
@click.option("--sudo", is_flag=True, help="Run the host script through `sudo -n` (never prompts).")
@click.option(
    "--known-hosts",
    type=click.Path(path_type=Path),
    help="known_hosts file (default ~/.ssh/known_hosts).",
)
@click.option(
    "--accept-new-host-keys",
    is_flag=True,
    help="Trust unknown SSH host keys on first use (a changed key is still refused).",
)
@click.option(
    "--ssh-config",
    type=click.Path(path_type=Path),
    help="SSH client config (default ~/.ssh/config).",
)
@click.option(
    "--connect-timeout",
    default=DEFAULT_CONNECT_TIMEOUT,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds to connect to a target.",
)
@click.option(
    "--command-timeout",
    default=DEFAULT_COMMAND_TIMEOUT,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds for the host script.",
)
@click.option(
    "--fail-under",
    type=click.FloatRange(0, 100),
    metavar="SCORE",
    help="Exit 1 when the overall score is below SCORE.",
)
@click.option(
    "--fail-on",
    type=click.Choice([s.value for s in Severity]),
    help="Exit 1 when anything of this severity or worse fails.",
)
@click.option(
    "--min-coverage",
    type=click.FloatRange(0, 100),
    metavar="PCT",
    help="Exit 1 when coverage is below PCT percent.",
)
@click.option("-q", "--quiet", is_flag=True, help="No summary and no progress bar.")
def run(
    targets: tuple[str, ...],
    inventory: Path | None,
    profile: str,
    overlays: tuple[Path, ...],
    variables: tuple[str, ...],
    reports: tuple[str, ...],
    concurrency: int,
    user: str | None,
    identities: tuple[Path, ...],
    sudo: bool,
    known_hosts: Path | None,
    accept_new_host_keys: bool,
    ssh_config: Path | None,
    connect_timeout: float,
    command_timeout: float,
    fail_under: float | None,
    fail_on: str | None,
    min_coverage: float | None,
    quiet: bool,
) -> ExitStatus:
    """Audit targets with a profile, write reports, and gate on the score."""
    requests = [ReportRequest.parse(r) for r in (reports or DEFAULT_REPORTS)]
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
    )
    specs = [replace(base, url=url) for url in targets if scheme_of(url)]
    if inventory is not None:
        specs += load_inventory(inventory, base)
    if not specs:
        specs = [base]
    names = [s.display_name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"target named twice: {duplicates[0]}")
    config = RunConfig(
        targets=tuple(specs),
        profile=profile,
        overlays=overlays,
        concurrency=concurrency,
        gates=Gates(fail_under, Severity(fail_on) if fail_on else None, min_coverage),
        variables=dict(_parse_var(v) for v in variables),
        progress=not quiet and sys.stderr.isatty(),
    )
    return _run(config, requests, quiet=quiet)


def _run(config: RunConfig, requests: list[ReportRequest], *, quiet: bool) -> ExitStatus:
    loaded = load_profile(config.profile, config.overlays)
    unknown = sorted(set(config.variables) - set(loaded.variables))
    if unknown:
        raise InputError(f"unknown profile variable {unknown[0]!r}", item=unknown[0])
    if config.variables:
        loaded = replace(loaded, variables={**loaded.variables, **config.variables})
    progress = _progress(len(config.targets)) if config.progress else nullcontext(None)
    with progress as bar:

        def done(record: TargetRecord, results: list[Result]) -> None:
            if bar is not None:
                bar[0].advance(bar[1])

        finished = engine.run(
            loaded, config.targets, concurrency=config.concurrency, on_target_done=done
        )
    doc = document.build(finished, loaded)
    to_stdout = any(r.path == "-" for r in requests)
    for request in requests:
        write(request, doc)
    if not quiet and not to_stdout:
        write(ReportRequest("terminal", "-"), doc)
        for request in requests:
            click.echo(f"wrote {request.format} report: {request.path}", err=True)
    return _exit_status(doc, config.gates)


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
