"""`auditor runs list|show|prune` and `auditor diff`: the stored runs and the drift between two.

RUN is a run id, a unique prefix of one (4+ characters), `latest` or `latest~N`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from tabulate import tabulate

from auditor.errors import ExitStatus, InputError, ReportError
from auditor.regularfile import is_file
from auditor.sanitize import plain

if TYPE_CHECKING:  # the store (SQLAlchemy) is imported when a command runs, not at start-up
    from auditor.store import RunInfo

FORMATS = click.Choice(["table", "json", "html"])
db_option = click.option(
    "--db",
    envvar="AUDITOR_DB",
    metavar="URL",
    help="Evidence store URL or SQLite file (default: auditor.db in the XDG data directory).",
)
format_option = click.option(
    "-f", "--format", "fmt", type=FORMATS, default="table", show_default=True, help="Output format."
)


def _fmt(value: float | None, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.1f}{suffix}"


def _delta(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}"


def _html(template: str, **context: Any) -> str:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    from auditor.resources import templates_dir

    env = Environment(
        loader=FileSystemLoader(templates_dir()),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
    )
    return env.get_template(template).render(**context)


def _out(text: str) -> None:
    click.echo(text, nl=not text.endswith("\n"))


@click.group()
def runs() -> None:
    """Stored runs: list them, show one, prune old ones."""


@runs.command("list")
@db_option
@format_option
@click.option("-n", "--limit", default=50, show_default=True, type=click.IntRange(1), help="Runs.")
@click.option("--target", metavar="NAME", help="Only runs that audited this target.")
def list_runs(db: str | None, fmt: str, limit: int, target: str | None) -> ExitStatus:
    """The newest runs first, with score, coverage and completeness."""
    from auditor.store import open_store

    with open_store(db) as store:
        found = store.list_runs(limit, target)
        url = store.url
    if fmt == "json":
        _out(json.dumps([info.as_dict() for info in found], indent=1) + "\n")
    elif fmt == "html":
        _out(_html("runs.html.j2", runs=[info.as_dict() for info in found], db=url))
    else:
        _out(_runs_table(found) if found else f"no runs stored in {url}")
    return ExitStatus.OK


def _runs_table(found: list[RunInfo]) -> str:
    rows = [
        [
            info.id[:8],
            info.started_at,
            plain(", ".join(info.targets), 40),
            f"{info.profile_id} {info.profile_version}",
            _fmt(info.score),
            info.grade or "-",
            _fmt(info.coverage, "%"),
            "complete"
            if info.complete
            else f"INCOMPLETE ({info.saved_targets}/{len(info.targets)})",
            info.source + (" UNTRUSTED" if info.untrusted else ""),
        ]
        for info in found
    ]
    headers = ["run", "started", "targets", "profile", "score", "grade", "coverage", "state", "by"]
    return tabulate(rows, headers) + "\n"


@runs.command("show")
@click.argument("run_ref", metavar="RUN")
@db_option
@format_option
def show_run(run_ref: str, db: str | None, fmt: str) -> ExitStatus:
    """One run: the summary (table), its results document (json) or HTML report (html)."""
    from auditor.document import dumps
    from auditor.store import open_store

    with open_store(db) as store:
        document = store.load_document(store.resolve(run_ref))
    if fmt == "json":
        _out(dumps(document))
    elif fmt == "html":
        from auditor.reporters import FORMATS as REPORT_FORMATS
        from auditor.reporters import reporter_for

        if "html" not in REPORT_FORMATS:
            raise ReportError("this auditor has no html report format")
        content = reporter_for("html").render(document)
        _out(content.decode() if isinstance(content, bytes) else content)
    else:
        from auditor.reporters import reporter_for

        content = reporter_for("terminal").render(document)
        _out(content.decode() if isinstance(content, bytes) else content)
    return ExitStatus.OK


@runs.command("prune")
@db_option
@click.option(
    "--keep", type=click.IntRange(0), metavar="N", help="Keep the N newest runs of each target set."
)
@click.option(
    "--older-than",
    type=click.FloatRange(0),
    metavar="DAYS",
    help="Delete runs started more than DAYS ago, and cached image layers no audit used since.",
)
@click.option("--dry-run", is_flag=True, help="Only list what would be deleted.")
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def prune_runs(
    db: str | None, keep: int | None, older_than: float | None, dry_run: bool, fmt: str
) -> ExitStatus:
    """Delete old runs, and the evidence no remaining run refers to."""
    if keep is None and older_than is None:
        raise click.UsageError("give --keep N and/or --older-than DAYS")
    from auditor.store import open_store

    with open_store(db) as store:
        deleted = store.prune(keep=keep, older_than_days=older_than, dry_run=dry_run)
    if fmt == "json":
        _out(json.dumps({"dry_run": dry_run, "runs": deleted}, indent=1) + "\n")
    else:
        verb = "would delete" if dry_run else "deleted"
        _out(f"{verb} {len(deleted)} run(s)" + "".join(f"\n  {run}" for run in deleted) + "\n")
    return ExitStatus.OK


@click.command("diff")
@click.argument("run_a", metavar="A")
@click.argument("run_b", metavar="B")
@db_option
@format_option
@click.option(
    "--force",
    is_flag=True,
    help="Compare even when A and B were judged by different profiles or views, or share "
    "no target.",
)
def diff_runs(run_a: str, run_b: str, db: str | None, fmt: str, force: bool) -> ExitStatus:
    """Drift from A to B: new failures, fixed, still failing, newly applicable, changed
    evidence, and score and coverage deltas per target and control.

    A and B are stored runs (id, unique prefix, `latest`, `latest~N`) or results files
    written by `--report json:PATH` (e.g. two CI runs with --no-store), in any mix.
    """
    from auditor import drift

    a, b = _documents(run_a, run_b, db)
    blocking, warnings = drift.mismatches(a, b)
    if blocking and not force:
        raise InputError(
            f"A and B are not comparable: {'; '.join(blocking)}",
            hint="compare them anyway with --force",
        )
    for line in blocking + warnings:
        click.echo(f"auditor: warning: {plain(line, 500)}", err=True)
    result = drift.compare(a, b)
    if fmt == "json":
        _out(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    elif fmt == "html":
        _out(_html("diff.html.j2", diff=result, categories=_CATEGORY_TITLES))
    else:
        _out(diff_table(result))
    return ExitStatus.OK


def _documents(run_a: str, run_b: str, db: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The two results documents: a name that is a file is read as one, the others are
    looked up in the store (opened only when one is needed)."""
    from auditor import document

    files = {ref: Path(ref) for ref in (run_a, run_b) if is_file(Path(ref))}
    stored = [ref for ref in (run_a, run_b) if ref not in files]
    loaded = {ref: document.load(path) for ref, path in files.items()}
    if stored:
        from auditor.store import open_store

        with open_store(db) as store:
            for ref in stored:
                loaded[ref] = store.load_document(store.resolve(ref), history=0)
    return loaded[run_a], loaded[run_b]


_CATEGORY_TITLES = {
    "new_failures": "New failures",
    "fixed": "Fixed",
    "still_failing": "Still failing",
    "newly_applicable": "Newly applicable",
    "no_longer_applicable": "No longer applicable",
    "changed": "Other status changes",
}


def diff_table(result: dict[str, Any]) -> str:
    a, b, overall = result["a"], result["b"], result["score"]
    lines = [
        f"A {a['id']}  {a['started_at']}  {a['profile']}"
        + ("" if a["complete"] else "  INCOMPLETE"),
        f"B {b['id']}  {b['started_at']}  {b['profile']}"
        + ("" if b["complete"] else "  INCOMPLETE"),
        "",
        f"score {_fmt(overall['a'])} -> {_fmt(overall['b'])} ({_delta(overall['delta'])})   "
        f"coverage {_fmt(overall['coverage_a'], '%')} -> {_fmt(overall['coverage_b'], '%')} "
        f"({_delta(overall['coverage_delta'])})",
        "  ".join(f"{_CATEGORY_TITLES[k].lower()} {v}" for k, v in result["counts"].items()),
    ]
    if result["targets"]["added"] or result["targets"]["removed"]:
        lines.append(
            f"targets added: {', '.join(map(plain, result['targets']['added'])) or '-'}; "
            f"removed: {', '.join(map(plain, result['targets']['removed'])) or '-'}"
        )
    for side in ("a", "b"):
        if result["targets"].get(f"not_audited_{side}"):
            names = ", ".join(map(plain, result["targets"][f"not_audited_{side}"]))
            lines.append(f"not audited in run {side.upper()}: {names}")
    for key, title in _CATEGORY_TITLES.items():
        entries = result[key]
        if not entries:
            continue
        rows = [
            [
                e["severity"],
                f"{e['a'] or '-'} -> {e['b'] or '-'}",
                e["check_id"],
                plain(e["target"], 30),
                plain(f"{e['subject']['kind']} {e['subject']['name']}", 40),
                plain(e["message"], 60),
            ]
            for e in entries
        ]
        lines += ["", f"{title} ({len(entries)})"]
        lines.append(
            tabulate(rows, ["severity", "status", "check", "target", "subject", "message"])
        )
    target_rows = [
        [
            plain(r["target"], 40),
            _fmt(r["a"]),
            _fmt(r["b"]),
            _delta(r["delta"]),
            _fmt(r["coverage_a"], "%"),
            _fmt(r["coverage_b"], "%"),
            _delta(r["coverage_delta"]),
        ]
        for r in result["by_target"]
    ]
    headers = ["", "score A", "score B", "delta", "coverage A", "coverage B", "delta"]
    if target_rows:
        lines += ["", "By target", tabulate(target_rows, ["target", *headers[1:]])]
    control_rows = [
        [
            r["control"],
            _fmt(r["a"]),
            _fmt(r["b"]),
            _delta(r["delta"]),
            _fmt(r["coverage_a"], "%"),
            _fmt(r["coverage_b"], "%"),
            _delta(r["coverage_delta"]),
        ]
        for r in result["by_control"]
        if r["delta"] or r["coverage_delta"] or (r["a"] is None) != (r["b"] is None)
    ]
    if control_rows:
        lines += ["", "Controls that changed", tabulate(control_rows, ["control", *headers[1:]])]
    if result["evidence"]:
        lines += ["", f"Changed evidence ({len(result['evidence'])})"]
        for change in result["evidence"]:
            summary = change.get("summary") or {}
            parts = [
                f"{label} {', '.join(plain(str(x), 200) for x in summary.get(label, []))}"
                for label in ("added", "removed", "changed")
                if summary.get(label)
            ]
            if not change["a"] or not change["b"]:
                parts.append(
                    f"{change['error_a'] or 'collected'} -> {change['error_b'] or 'collected'}"
                )
            lines.append(f"  {plain(change['target'], 40)} {change['fact']}: " + "; ".join(parts))
    return "\n".join(lines) + "\n"
