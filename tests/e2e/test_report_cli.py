"""`auditor report` renders stored results again, without a target; `auditor run` writes the
HTML report by default."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from html_check import parse
from report_docs import fixture_document

from auditor.document import dumps

DATA = Path(__file__).resolve().parents[1] / "data" / "k8s" / "manifests"
SNAPSHOT = f"k8s-snapshot://{DATA / 'checkov' / 'example_PrivilegedContainers'}"
FORMATS = ("html", "pdf", "json", "junit", "sarif", "oscal", "csv", "markdown")


def test_report_renders_every_format_from_a_results_file(auditor_cli, tmp_path):
    results = tmp_path / "results.json"
    results.write_text(dumps(fixture_document()))
    args = ["report", str(results)]
    for fmt in FORMATS:
        args += ["--report", f"{fmt}:{tmp_path / 'out' / f'report.{fmt}'}"]
    done = auditor_cli(*args)
    assert done.code == 0, done.err
    for fmt in FORMATS:
        assert (tmp_path / "out" / f"report.{fmt}").stat().st_size > 1000, fmt
    again = json.loads((tmp_path / "out" / "report.json").read_text())
    assert again == json.loads(results.read_text())
    info = subprocess.run(
        ["pdfinfo", str(tmp_path / "out" / "report.pdf")], capture_output=True, text=True,
        timeout=60, check=True,
    ).stdout  # fmt: skip
    assert "Pages:" in info


def test_report_to_stdout_and_default_terminal(auditor_cli, tmp_path):
    results = tmp_path / "results.json"
    results.write_text(dumps(fixture_document()))
    markdown = auditor_cli("report", str(results), "--report", "markdown:-")
    assert markdown.code == 0 and markdown.out.startswith("## auditor:")
    terminal = auditor_cli("report", str(results))
    assert terminal.code == 0 and "Score" in terminal.out


def test_bad_input_is_a_clear_error(auditor_cli, tmp_path):
    missing = auditor_cli("report", str(tmp_path / "nope.json"))
    assert missing.code == 2 and "no such results file" in missing.err
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')
    wrong = auditor_cli("report", str(other), "--report", "html:-")
    assert wrong.code == 2 and "not an auditor results document" in wrong.err
    results = tmp_path / "results.json"
    results.write_text(dumps(fixture_document()))
    unknown = auditor_cli("report", str(results), "--report", "docx:out.docx")
    assert unknown.code == 2 and "unknown report format 'docx'" in unknown.err


def test_report_a_stored_run_by_id_with_its_trend(auditor_cli, tmp_path):
    db = tmp_path / "store.db"
    for _ in range(2):
        done = auditor_cli("run", "-q", "-t", SNAPSHOT, "--db", str(db),
                           "--report", f"json:{tmp_path / 'results.json'}")  # fmt: skip
        assert done.code in (0, 1), done.err
    written = json.loads((tmp_path / "results.json").read_text())
    html = tmp_path / "latest.html"
    shown = auditor_cli("report", "latest", "--db", str(db), "--report", f"html:{html}",
                        "--report", f"json:{tmp_path / 'loaded.json'}")  # fmt: skip
    assert shown.code == 0, shown.err
    loaded = json.loads((tmp_path / "loaded.json").read_text())
    assert loaded["run"]["id"] == written["run"]["id"]
    assert len(loaded["results"]) == len(written["results"])
    assert len(loaded["history"]) == 1  # the first run
    page = parse(html.read_text())
    assert any(
        e.attrs.get("aria-label", "").startswith("Score and coverage over the last 2 runs")
        for e in page.find("svg")
    )
    prefix = auditor_cli("report", written["run"]["id"][:8], "--db", str(db),
                         "--report", "json:-")  # fmt: skip
    assert prefix.code == 0 and json.loads(prefix.out)["run"]["id"] == written["run"]["id"]


def test_a_bare_run_writes_json_and_html(auditor_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    done = auditor_cli("run", "-q", "--no-store", "-t", SNAPSHOT)
    assert done.code in (0, 1), done.err
    assert json.loads((tmp_path / "auditor-results.json").read_text())["schema"]
    assert parse((tmp_path / "auditor-report.html").read_text()).problems == []
