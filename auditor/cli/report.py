"""`auditor report`: render stored results again, in any format, without touching a target."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from auditor import document
from auditor.errors import ExitStatus, InputError
from auditor.reporters import parse_requests, write


@click.command()
@click.argument("source", metavar="RESULTS.json|RUN")
@click.option(
    "-r",
    "--report",
    "reports",
    multiple=True,
    metavar="FORMAT:PATH",
    help="Write a report (html, pdf, json, junit, sarif, oscal, csv, markdown, terminal); "
    "PATH '-' is stdout. Repeatable. Default: terminal:-",
)
@click.option(
    "--db",
    metavar="URL",
    envvar="AUDITOR_DB",
    help="Result store to load RUN_ID from (SQLAlchemy URL, e.g. sqlite:///runs.db).",
)
def report(source: str, reports: tuple[str, ...], db: str | None) -> ExitStatus:
    """Render the results of an earlier run again, without touching a target.

    RESULTS.json is a file written by `--report json:PATH`. With --db, RUN is a run in the
    store: its id, a unique prefix, `latest` or `latest~N`; the document then carries the
    earlier runs of the same targets, so the HTML and PDF reports draw the trend.
    """
    requests = parse_requests(reports or ("terminal:-",))
    doc = _load(source, db)
    to_stdout = any(r.path == "-" for r in requests)
    for request in requests:
        write(request, doc)
        if not to_stdout:
            click.echo(f"wrote {request.format} report: {request.path}", err=True)
    return ExitStatus.OK


def _load(source: str, db: str | None) -> dict[str, Any]:
    path = Path(source)
    if path.exists() or db is None:
        if not path.exists():
            raise InputError(
                "no such results file",
                path=path,
                hint="give a file written by `--report json:PATH`, or a run id with --db URL",
            )
        return document.load(path)
    from auditor.store import open_store  # the store (SQLAlchemy) only when it is asked for

    with open_store(db) as store:
        loaded: dict[str, Any] = store.load_document(store.resolve(source))
    return loaded
