"""PostgreSQL support is the `auditor[postgres]` extra: without its driver, a postgresql://
store is one clear error line naming the extra (exit 2), and SQLite still works."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The interpreter as it is where the extra was not installed: importing psycopg fails.
WITHOUT_PSYCOPG = """
import sys
sys.modules["psycopg"] = None  # `import psycopg` now raises ImportError, as when absent
from auditor.cli import main
main(sys.argv[1:])
"""


def auditor(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_PSYCOPG, *args], cwd=cwd, capture_output=True,
        text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip


def test_a_postgresql_store_without_the_extra_names_it(tmp_path):
    done = auditor(
        "runs", "list", "--db", "postgresql://audit:pw@127.0.0.1:1/auditor", cwd=tmp_path
    )
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert lines[0] == (
        "auditor: error: a PostgreSQL store (postgresql+psycopg://audit:***@127.0.0.1:1/auditor) "
        "needs the psycopg driver, an optional extra: pip install 'auditor[postgres]'"
    )
    assert "Traceback" not in done.stderr and "pw@" not in done.stderr


def test_sqlite_needs_no_extra(tmp_path):
    done = auditor("runs", "list", "--db", str(tmp_path / "runs.db"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr


def test_the_extra_is_declared_and_the_tests_pull_it():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith("psycopg") for d in project["dependencies"])
    extras = project["optional-dependencies"]
    assert extras["postgres"] == ["psycopg[binary]>=3.1"]
    assert "psycopg[binary]>=3.1" in extras["test"]
