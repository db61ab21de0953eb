"""`-q` prints nothing on success (libraries' warnings go to the debug log), two reports on
stdout are refused, and a missing --import file is an input error (exit 2)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from report_docs import fixture_document

from auditor.document import dumps

ROOT = Path(__file__).resolve().parents[2]
POD = (
    ROOT / "tests" / "data" / "k8s" / "manifests" / "checkov" / "example_PrivilegedContainers"
    / "privilegedPod-FAILED.yaml"
)  # fmt: skip
# A library that warns through both channels while a report is written, as urllib3 does.
WARNING_LIBRARY = """
import logging, sys, warnings
import urllib3
import auditor.reporters.json as reporter
write_to = reporter.JsonReporter.write_to
def noisy(self, document, out):
    warnings.warn("Unverified HTTPS request", urllib3.exceptions.InsecureRequestWarning)
    logging.getLogger("urllib3.connectionpool").warning("Retrying after a broken connection")
    return write_to(self, document, out)
reporter.JsonReporter.write_to = noisy
from auditor.cli import main
main(sys.argv[1:])
"""


def auditor(*args: str, cwd: Path, script: str | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", script, *args] if script else [
        sys.executable, "-m", "auditor", *args
    ]  # fmt: skip
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip


def snapshot(tmp_path: Path) -> str:
    (tmp_path / "k8s").mkdir()
    shutil.copy(POD, tmp_path / "k8s" / "pod.yaml")
    return "k8s-snapshot://k8s"


def test_quiet_pdf_run_prints_nothing_and_debug_shows_weasyprint(tmp_path):
    target = snapshot(tmp_path)
    args = ("run", "-q", "--no-store", "-t", target, "-r", "pdf:out.pdf", "-r", "sarif:o.sarif")
    quiet = auditor(*args, cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert (quiet.stdout, quiet.stderr) == ("", "")
    assert (tmp_path / "out.pdf").read_bytes().startswith(b"%PDF")
    debug = auditor("--debug", *args, cwd=tmp_path)
    assert debug.returncode == 0
    assert "DEBUG weasyprint" in debug.stderr  # the same notes, at debug level
    assert "WARNING weasyprint" not in debug.stderr


def test_urllib3_warnings_go_to_the_debug_log(tmp_path):
    results = tmp_path / "results.json"
    results.write_text(dumps(fixture_document()))
    args = ("report", str(results), "-r", "json:-")
    quiet = auditor(*args, cwd=tmp_path, script=WARNING_LIBRARY)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""
    assert json.loads(quiet.stdout)["run"]["id"]
    debug = auditor("--debug", *args, cwd=tmp_path, script=WARNING_LIBRARY)
    assert "DEBUG py.warnings" in debug.stderr and "InsecureRequestWarning" in debug.stderr
    assert "DEBUG urllib3.connectionpool: Retrying" in debug.stderr


def test_two_reports_on_stdout_are_refused(tmp_path):
    done = auditor(
        "run", "--no-store", "-t", snapshot(tmp_path), "-r", "sarif:-", "-r", "markdown:-",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (
        "auditor: error: --report sarif:- and --report markdown:- both write to stdout: "
        "give one a file\n"
    )
    same_file = auditor("report", "x.json", "-r", "json:a.out", "-r", "csv:./a.out", cwd=tmp_path)
    assert same_file.returncode == 2 and "both write to ./a.out" in same_file.stderr


def test_a_missing_import_file_is_an_input_error(tmp_path):
    done = auditor("run", "--no-store", "--import", "trivy:/missing.json", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr == "auditor: error: --import trivy:/missing.json: no such file\n"
