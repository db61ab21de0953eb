"""`auditor profiles`: list, show, validate and export the schema of benchmark profiles."""

from __future__ import annotations

import json
from pathlib import Path

import click
from tabulate import tabulate

from auditor.cli import print_error
from auditor.coverage import matrix, render_markdown
from auditor.errors import AuditorError, ExitStatus, InputError
from auditor.oscal import catalog, oscal_profile
from auditor.profiles import available_profiles, json_schemas, render_schema
from auditor.regularfile import is_file
from auditor.views import available_views, load_named, load_view
from auditor.yamlsrc import load_yaml


@click.group()
def profiles() -> None:
    """List, show and validate benchmark profiles."""


@profiles.command("list")
def profiles_list() -> None:
    """The shipped profiles, and the views that show their checks by another framework."""
    rows = []
    for directory in available_profiles():
        loaded = load_named(str(directory))
        rows.append(
            [
                "profile",
                loaded.id,
                loaded.version,
                len(loaded.controls),
                len(loaded.checks),
                loaded.title,
            ]
        )
    for path in available_views():
        loaded = load_view(path)
        rows.append(
            [
                "view",
                loaded.id,
                loaded.version,
                len(loaded.controls),
                len(loaded.checks),
                loaded.title,
            ]
        )
    click.echo(tabulate(rows, ["kind", "id", "version", "controls", "checks", "title"]))


@profiles.command("show")
@click.argument("name")
@click.option("--overlay", "overlays", multiple=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def profiles_show(name: str, overlays: tuple[Path, ...], fmt: str) -> None:
    """A profile's controls and checks."""
    loaded = load_named(name, overlays)
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
    if is_file(path) and path.name != "profile.yaml":
        doc = load_yaml(path, InputError)
        if isinstance(doc.data, dict) and "extends" in doc.data:
            load_named(str(doc.data["extends"]), [path])
            return
    load_named(str(path))


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


@profiles.command("coverage")
@click.argument("name", default="nist-800-190")
@click.option("--format", "fmt", type=click.Choice(["markdown", "json"]), default="markdown")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write to FILE.")
def profiles_coverage(name: str, fmt: str, output: Path | None) -> None:
    """The coverage matrix: per control, coverage kind, checks per target kind, references."""
    loaded = load_named(name)
    text = (
        render_markdown(loaded)
        if fmt == "markdown"
        else json.dumps(matrix(loaded), indent=2) + "\n"
    )
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")


@profiles.command("export")
@click.argument("name", default="nist-800-190")
@click.option(
    "--format", "fmt", type=click.Choice(["oscal-catalog", "oscal-profile"]), required=True
)
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write to FILE.")
@click.option("--catalog-href", help="Where the OSCAL profile finds the catalog.")
def profiles_export(name: str, fmt: str, output: Path | None, catalog_href: str | None) -> None:
    """Export a profile (or view) as an OSCAL 1.1.3 catalog or profile."""
    loaded = load_named(name)
    data = catalog(loaded) if fmt == "oscal-catalog" else oscal_profile(loaded, catalog_href)
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
