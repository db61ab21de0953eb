"""The suite and the perf scripts read nothing outside the repository: a fresh clone with
nothing beside it runs `make test` (the data they need is under tests/data)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("tests", "perf", "scripts", "Makefile", "pyproject.toml", ".ci")
SUFFIXES = {".py", ".sh", ".cfg", ".toml", ".ini", ".yaml", ".yml", ".txt", ""}
# a path that climbs out of the repository or names the directory beside it
ESCAPES = re.compile(
    r"""\.\./shared|["']shared["']\s*/|/work/|ROOT\.parent\b|\.\./\.\./\.\.|Path\(["']\.\.["']\)"""
)
PARENTS = re.compile(r"parents\[(\d+)\]")


def _sources() -> list[Path]:
    found: list[Path] = []
    for name in SCANNED:
        top = ROOT / name
        paths = [top] if top.is_file() else sorted(top.rglob("*")) if top.is_dir() else []
        found += [
            p
            for p in paths
            if p.is_file()
            and p.suffix in SUFFIXES
            and "__pycache__" not in p.parts
            and "data" not in p.relative_to(ROOT).parts[:2]  # copied upstream data
            and p != Path(__file__).resolve()
        ]
    return found


def test_no_source_reads_outside_the_repository():
    sources = _sources()
    assert len(sources) > 50  # the scan sees the suite
    offending = []
    for path in sources:
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if ESCAPES.search(line) and "a hostile value, never read" not in line:
                offending.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
            for match in PARENTS.finditer(line):
                # Path(__file__).resolve().parents[N] must stay inside the repository
                depth = len(path.relative_to(ROOT).parts) - 1
                if "__file__" in line and int(match.group(1)) > depth:
                    offending.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offending == []


def test_the_copied_data_is_there_with_its_sources():
    data = ROOT / "tests" / "data"
    readme = (data / "README.md").read_text()
    for needed in (
        "schemas/sarif-schema-2.1.0.json",
        "schemas/junit/JUnit.xsd",
        "schemas/junit/junit-10.xsd",
        "schemas/oscal/oscal_assessment-results_schema.json",
        "k8s/expected.json",
    ):
        assert (data / needed).is_file(), needed
    for upstream in ("oasis-tcs/sarif-spec", "usnistgov/OSCAL", "bridgecrewio/checkov",
                     "kubescape/regolibrary", "kubernetes/examples", "windyroad/JUnit-Schema",
                     "jenkinsci/xunit-plugin"):  # fmt: skip
        assert upstream in readme
    assert "Apache License" in (data / "LICENSES" / "Apache-2.0.txt").read_text()
    assert "CC0 1.0" in (data / "LICENSES" / "CC0-1.0.txt").read_text()
