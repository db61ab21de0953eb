"""`auditor report`: render stored results again, in any format, without touching a target."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from auditor import document
from auditor.errors import ExitStatus, InputError
from auditor.regularfile import exists
from auditor.reporters import ReportRequest, parse_requests, write


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
        _render(request, doc, source if db is None or exists(Path(source)) else None)
        if not to_stdout:
            click.echo(f"wrote {request.format} report: {request.path}", err=True)
    return ExitStatus.OK


def _render(request: ReportRequest, doc: dict[str, Any], path: str | None) -> None:
    """Write one report. A document read from a file passed its JSON Schema, but a hand-made
    one can still hold what no run writes (a reporter then fails on it): that is the file's
    problem, said in one line, not a traceback."""
    from jinja2 import TemplateError

    if path is None:  # from the store: written by auditor itself
        write(request, doc)
        return
    try:
        write(request, doc)
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, TemplateError) as exc:
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise InputError(
            f"cannot render {request.format}: not a document auditor writes ({reason})",
            path=path,
        ) from exc


def _load(source: str, db: str | None) -> dict[str, Any]:
    path = Path(source)
    if exists(path) or db is None:
        if not exists(path):
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
