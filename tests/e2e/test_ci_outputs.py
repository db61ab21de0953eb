"""The CI outputs as their real consumers read them: JUnit through junitparser and junit2html
over the 297 labelled real-world manifests (every case identity unique, the same on a second
run), SARIF through sarif-tools (csv, blame) from a git work tree, both against the official
schemas."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import jsonschema
import pytest
import xmlschema
from junitparser import JUnitXml

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
MANIFESTS = DATA / "k8s" / "manifests"
POD = MANIFESTS / "checkov" / "example_PrivilegedContainers" / "privilegedPod-FAILED.yaml"


def identities(path: Path) -> list[tuple[str, str, str]]:
    """(suite, classname, name) of every case, as junitparser reads them."""
    xml = JUnitXml.fromfile(str(path))
    return [(suite.name, case.classname, case.name) for suite in xml for case in suite]


@pytest.fixture(scope="module")
def dataset_runs(tmp_path_factory):
    """Two runs over the whole dataset as one snapshot: JUnit and JSON of each."""
    from auditor.cli import main

    work = tmp_path_factory.mktemp("junit")
    shutil.copytree(MANIFESTS, work / "manifests")
    outputs = []
    for n in (1, 2):
        xml, doc = work / f"run{n}.xml", work / f"run{n}.json"
        args = ["run", "-q", "--no-store", "-t", f"k8s-snapshot://{work / 'manifests'}"]
        with pytest.raises(SystemExit) as done:
            main([*args, "-r", f"junit:{xml}", "-r", f"json:{doc}"])
        assert done.value.code == 0
        outputs.append((xml, json.loads(doc.read_text())))
    return outputs


def test_every_junit_case_identity_is_unique(dataset_runs):
    xml, doc = dataset_runs[0]
    found = identities(xml)
    assert len(found) == len(doc["results"]) > 5000
    repeated = {key: n for key, n in Counter(found).items() if n > 1}
    assert repeated == {}
    # readable: the subject and its file:line are in the name
    cases = {(c, n) for _s, c, n in found}
    pod = next(
        r
        for r in doc["results"]
        if r["subject"]["location"]
        == "checkov/example_PrivilegedContainers/privilegedPod-FAILED.yaml:2"
        and r["check_id"] == "k8s.pod.no-privileged"
    )
    name = (
        f"[{pod['control_id']}] {pod['title']} ({pod['subject']['kind']} "
        f"{pod['subject']['name']} at {pod['subject']['location']})"
    )
    assert ("k8s.pod.no-privileged", name) in cases


def test_junit_identities_are_the_same_on_a_second_run(dataset_runs):
    assert identities(dataset_runs[0][0]) == identities(dataset_runs[1][0])


@pytest.mark.parametrize("schema", ["JUnit.xsd", "junit-10.xsd"])
def test_the_dataset_junit_is_valid_for_ci(dataset_runs, schema):
    xmlschema.XMLSchema(str(DATA / "schemas" / "junit" / schema)).validate(str(dataset_runs[0][0]))


def test_junit2html_renders_it(dataset_runs, tmp_path):
    out = tmp_path / "junit.html"
    done = subprocess.run(
        [sys.executable, "-m", "junit2htmlreport", str(dataset_runs[0][0]), str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    html = out.read_text()
    assert "k8s.pod.no-privileged" in html and "privilegedPod-FAILED.yaml:2" in html


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()


@pytest.fixture(scope="module")
def repo_sarif(tmp_path_factory):
    """`cd repo && auditor run -t k8s-snapshot://deploy/k8s -r sarif:...` in a git work tree."""
    repo = tmp_path_factory.mktemp("repo")
    (repo / "deploy" / "k8s").mkdir(parents=True)
    shutil.copy(POD, repo / "deploy" / "k8s" / "privilegedPod.yaml")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "-c", "user.name=ci", "-c", "user.email=ci@example.com", "commit", "-qm", "pod")
    done = subprocess.run(
        [sys.executable, "-m", "auditor", "run", "-q", "--no-store",
         "-t", "k8s-snapshot://deploy/k8s", "-r", "sarif:out.sarif"],
        cwd=repo, capture_output=True, text=True, timeout=300,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""  # -q: nothing on success
    return repo, repo / "out.sarif"


def test_sarif_names_the_file_from_where_auditor_ran(repo_sarif):
    repo, path = repo_sarif
    sarif = json.loads(path.read_text())
    schema = json.loads((DATA / "schemas" / "sarif-schema-2.1.0.json").read_text())
    validator = jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker())
    assert [e.message for e in validator.iter_errors(sarif)] == []
    run = sarif["runs"][0]
    artifacts = {
        json.dumps(r["locations"][0]["physicalLocation"]["artifactLocation"])
        for r in run["results"]
    }
    assert artifacts == {
        json.dumps({"uri": "deploy/k8s/privilegedPod.yaml", "uriBaseId": "%SRCROOT%"})
    }
    assert run["versionControlProvenance"][0]["revisionId"] == git(repo, "rev-parse", "HEAD")


def test_sarif_tools_read_it(repo_sarif, tmp_path):
    repo, path = repo_sarif
    table = tmp_path / "out.csv"
    done = subprocess.run(
        ["sarif", "csv", "-o", str(table), str(path)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    rows = table.read_text().splitlines()
    assert rows[0].startswith("Tool,Severity,Code,Description,Location,Line")
    assert any(",deploy/k8s/privilegedPod.yaml,2" in row for row in rows[1:])
    # sarif blame runs `git blame` on every result's file: each must be found in the work tree
    blamed = tmp_path / "blamed.sarif"
    done = subprocess.run(
        ["sarif", "blame", "-o", str(blamed), "-c", str(repo), str(path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    results = json.loads(blamed.read_text())["runs"][0]["results"]
    assert results and all(r["properties"]["blame"]["committer"] == "ci" for r in results)
