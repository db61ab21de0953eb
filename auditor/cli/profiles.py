"""`auditor profiles`: list, show, validate and export the schema of benchmark profiles."""

from __future__ import annotations

import json
from pathlib import Path

import click
from tabulate import tabulate

from auditor.cli import print_error
from auditor.errors import AuditorError, ExitStatus, InputError
from auditor.profiles import available_profiles, json_schemas, load_profile, render_schema
from auditor.yamlsrc import load_yaml


@click.group()
def profiles() -> None:
    """List, show and validate benchmark profiles."""


@profiles.command("list")
def profiles_list() -> None:
    """The shipped profiles."""
    rows = []
    for directory in available_profiles():
        loaded = load_profile(str(directory))
        rows.append(
            [loaded.id, loaded.version, len(loaded.controls), len(loaded.checks), loaded.title]
        )
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
            "id": loaded.id,
            "title": loaded.title,
            "version": loaded.version,
            "variables": loaded.variables,
            "controls": [
                {
                    "id": e.control.id,
                    "title": e.control.title,
                    "section": e.section.id,
                    "coverage": str(e.control.coverage),
                    "checks": [
                        {
                            "id": c.id,
                            "severity": str(c.severity),
                            "target": str(c.target),
                            "title": c.title,
                        }
                        for c in e.control.checks
                    ],
                }
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
            print_error(exc)
            status = ExitStatus.USAGE
    return status


def _validate_one(path: Path) -> None:
    if path.is_file() and path.name != "profile.yaml":
        doc = load_yaml(path, InputError)
        if isinstance(doc.data, dict) and "extends" in doc.data:
            load_profile(str(doc.data["extends"]), [path])
            return
    load_profile(str(path))


@profiles.command("schema")
@click.option(
    "--write",
    "directory",
    type=click.Path(path_type=Path),
    help="Write the schema files into this directory instead of printing them.",
)
def profiles_schema(directory: Path | None) -> None:
    """The JSON Schemas of the profile, control-file and overlay formats."""
    for name, schema in json_schemas().items():
        if directory is None:
            click.echo(render_schema(schema))
        else:
            (directory / name).write_text(render_schema(schema), encoding="utf-8")
