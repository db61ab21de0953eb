"""The command line: flags, environment and files -> RunConfig -> engine -> ExitStatus.

Only this module catches broadly: every error becomes one line on stderr and an exit status
(see errors.ExitStatus); `--debug` shows the traceback as well.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
import yaml

from auditor import __version__, document, engine
from auditor.config import (
    DEFAULT_COMMAND_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT,
    Gates,
    RunConfig,
    TargetSpec,
)
from auditor.errors import AuditorError, ExitStatus, InputError
from auditor.inventory import load_inventory
from auditor.model import Result, Severity, Status, TargetRecord
from auditor.profiles import (
    DEFAULT_PROFILE,
    available_profiles,
    json_schemas,
    load_profile,
    render_schema,
)
from auditor.reporters import ReportRequest, write
from auditor.targets import scheme_of

DEFAULT_REPORTS = ("json:auditor-results.json",)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="auditor")
@click.option("--debug", is_flag=True, envvar="AUDITOR_DEBUG", help="Log details and show tracebacks.")
def cli(debug: bool) -> None:
    """auditor: NIST SP 800-190 as code for hosts, Docker daemons and Kubernetes clusters."""
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _parse_var(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise InputError(f"bad --var {text!r}: expected NAME=VALUE (VALUE is YAML)")
    try:
        return key, yaml.safe_load(raw)
    except yaml.YAMLError:
        raise InputError(f"bad --var {text!r}: the value is not valid YAML") from None


@cli.command()
@click.option("-t", "--target", "targets", multiple=True, metavar="URL",
              help="local://, ssh://[user@]host[:port]. Repeatable. Default: local://")
@click.option("-i", "--inventory", type=click.Path(path_type=Path), help="YAML inventory of hosts.")
@click.option("-p", "--profile", default=DEFAULT_PROFILE, envvar="AUDITOR_PROFILE",
              show_default=True, help="Shipped profile id, or a profile directory.")
@click.option("--overlay", "overlays", multiple=True, type=click.Path(path_type=Path),
              help="Overlay file changing the profile. Repeatable.")
@click.option("--var", "variables", multiple=True, metavar="NAME=VALUE",
              help="Set a profile variable (VALUE is YAML). Repeatable.")
@click.option("-r", "--report", "reports", multiple=True, metavar="FORMAT:PATH",
              help="Write a report; PATH '-' is stdout. Repeatable. "
              f"Default: {', '.join(DEFAULT_REPORTS)}")
@click.option("-c", "--concurrency", default=8, show_default=True, type=click.IntRange(1, 256),
              envvar="AUDITOR_CONCURRENCY", help="Targets audited at once.")
@click.option("-u", "--user", help="SSH user (default: URL, ~/.ssh/config, then $USER).")
@click.option("--identity", "identities", multiple=True, type=click.Path(path_type=Path),
              help="SSH private key file. Repeatable. Default: ssh-agent and ~/.ssh keys.")
@click.option("--sudo", is_flag=True, help="Run the host script through `sudo -n` (never prompts).")
@click.option("--known-hosts", type=click.Path(path_type=Path),
              help="known_hosts file (default ~/.ssh/known_hosts).")
@click.option("--accept-new-host-keys", is_flag=True,
              help="Trust unknown SSH host keys on first use (a changed key is still refused).")
@click.option("--ssh-config", type=click.Path(path_type=Path),
              help="SSH client config (default ~/.ssh/config).")
@click.option("--connect-timeout", default=DEFAULT_CONNECT_TIMEOUT, show_default=True,
              type=click.FloatRange(min=0.1), help="Seconds to connect to a target.")
@click.option("--command-timeout", default=DEFAULT_COMMAND_TIMEOUT, show_default=True,
              type=click.FloatRange(min=0.1), help="Seconds for the host script.")
@click.option("--fail-under", type=click.FloatRange(0, 100), metavar="SCORE",
              help="Exit 1 when the overall score is below SCORE.")
@click.option("--fail-on", type=click.Choice([s.value for s in Severity]),
              help="Exit 1 when anything of this severity or worse fails.")
@click.option("--min-coverage", type=click.FloatRange(0, 100), metavar="PCT",
              help="Exit 1 when coverage is below PCT percent.")
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

        finished = engine.run(loaded, config.targets, concurrency=config.concurrency,
                              on_target_done=done)
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
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
    from rich.console import Console

    class _Bar:
        def __enter__(self) -> tuple[Progress, Any]:
            self.progress = Progress("auditing", BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), console=Console(stderr=True),
                                     transient=True)
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
        worst = [r for r in doc["results"] if r["status"] == Status.FAIL
                 and Severity(r["severity"]).rank >= gates.fail_on.rank]
        if worst:
            failed.append(f"{len(worst)} failing result(s) of severity {gates.fail_on} or worse")
    for reason in failed:
        click.echo(f"auditor: gate failed: {reason}", err=True)
    return ExitStatus.GATE_FAILED if failed else ExitStatus.OK


@cli.group()
def profiles() -> None:
    """List, show and validate benchmark profiles."""


@profiles.command("list")
def profiles_list() -> None:
    """The shipped profiles."""
    rows = []
    for directory in available_profiles():
        loaded = load_profile(str(directory))
        rows.append([loaded.id, loaded.version, len(loaded.controls), len(loaded.checks),
                     loaded.title])
    from tabulate import tabulate

    click.echo(tabulate(rows, ["id", "version", "controls", "checks", "title"]))


@profiles.command("show")
@click.argument("name")
@click.option("--overlay", "overlays", multiple=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def profiles_show(name: str, overlays: tuple[Path, ...], fmt: str) -> None:
    """A profile's controls and checks."""
    loaded = load_profile(name, overlays)
    if fmt == "json":
        data = {
            "id": loaded.id, "title": loaded.title, "version": loaded.version,
            "variables": loaded.variables,
            "controls": [
                {"id": e.control.id, "title": e.control.title, "section": e.section.id,
                 "coverage": str(e.control.coverage),
                 "checks": [{"id": c.id, "severity": str(c.severity), "target": str(c.target),
                             "title": c.title} for c in e.control.checks]}
                for e in loaded.controls
            ],
        }
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"{loaded.id} {loaded.version}: {loaded.title}")
    for entry in loaded.controls:
        control = entry.control
        click.echo(f"\n{control.id}  {control.title}  [{control.coverage}]")
        for check in control.checks:
            click.echo(f"  - {check.id}  ({check.severity}, {check.target})  {check.title}")
        if control.attestation:
            click.echo(f"  ? attestation: {control.attestation.question}")


@profiles.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def profiles_validate(files: tuple[Path, ...]) -> ExitStatus:
    """Check profiles (profile.yaml or a directory) and overlays (`extends:`) for errors."""
    status = ExitStatus.OK
    for path in files:
        try:
            _validate_one(path)
            click.echo(f"{path}: ok")
        except AuditorError as exc:
            _print_error(exc)
            status = ExitStatus.USAGE
    return status


def _validate_one(path: Path) -> None:
    if path.is_file() and path.name != "profile.yaml":
        from auditor.yamlsrc import load_yaml

        doc = load_yaml(path, InputError)
        if isinstance(doc.data, dict) and "extends" in doc.data:
            load_profile(str(doc.data["extends"]), [path])
            return
    load_profile(str(path))


@profiles.command("schema")
@click.option("--write", "directory", type=click.Path(path_type=Path),
              help="Write the schema files into this directory instead of printing them.")
def profiles_schema(directory: Path | None) -> None:
    """The JSON Schemas of the profile, control-file and overlay formats."""
    for name, schema in json_schemas().items():
        if directory is None:
            click.echo(render_schema(schema))
        else:
            (directory / name).write_text(render_schema(schema), encoding="utf-8")


def _print_error(exc: AuditorError) -> None:
    click.echo(f"auditor: error: {exc}", err=True)
    for line in getattr(exc, "more", ()):
        click.echo(f"auditor: error: {line}", err=True)
    if exc.hint:
        click.echo(f"auditor: hint: {exc.hint}", err=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: run the command and map every outcome to an exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or bool(os.environ.get("AUDITOR_DEBUG"))
    try:
        status = cli.main(args=args, prog_name="auditor", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("auditor: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(ExitStatus.USAGE)
    except AuditorError as exc:
        if debug:
            raise
        _print_error(exc)
        sys.exit(exc.exit_status)
    except KeyboardInterrupt:
        click.echo("auditor: interrupted", err=True)
        sys.exit(130)
    sys.exit(int(status) if isinstance(status, int) else ExitStatus.OK)
