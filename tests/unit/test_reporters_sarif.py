"""SARIF 2.1.0: valid against the OASIS schema; rules are checks, results the failing subjects
that live in a file, named from %SRCROOT% (the git work tree or the working directory)."""

from __future__ import annotations

import copy
import json
import subprocess
from collections import Counter
from pathlib import Path

import jsonschema
import pytest
from report_docs import fixture_document

from auditor.reporters.sarif import SarifReporter
from auditor.reporters.srcroot import SourceRoot

SCHEMA = Path(__file__).resolve().parents[1] / "data" / "schemas" / "sarif-schema-2.1.0.json"


def validate(sarif):
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker())
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(sarif)]
    assert errors == []


@pytest.fixture(scope="module")
def sarif(tmp_path_factory):
    root = SourceRoot(tmp_path_factory.mktemp("src"))
    return json.loads(SarifReporter(root).render(fixture_document()))


def test_valid_sarif(sarif):
    validate(sarif)
    assert sarif["version"] == "2.1.0"


def test_rules_are_every_check_with_help_and_severity(sarif):
    doc = fixture_document()
    rules = sarif["runs"][0]["tool"]["driver"]["rules"]
    checks = [k for c in doc["controls"] for k in c["checks"]]
    assert [r["id"] for r in rules] == [k["id"] for k in checks]
    for rule, check in zip(rules, checks, strict=True):
        assert rule["help"]["text"].startswith(check["remediation"])
        assert float(rule["properties"]["security-severity"]) >= 0
        assert rule["relationships"][0]["target"]["toolComponent"]["name"] == "NIST SP 800-190"
        assert rule["helpUri"].startswith("https://")
    assert sarif["runs"][0]["taxonomies"][0]["informationUri"].startswith("https://")


def test_results_are_the_reported_subjects_with_a_file_the_rest_counted(sarif):
    doc = fixture_document()
    checks = {k["id"] for c in doc["controls"] for k in c["checks"]}
    reported = [
        r
        for r in doc["results"]
        if r["status"] in ("fail", "waived", "error") and r["check_id"] in checks
    ]
    with_file = Counter(r["status"] for r in reported if r["subject"]["location"])
    without_file = Counter(r["target"] for r in reported if not r["subject"]["location"])
    assert with_file and without_file  # the fixture has both kinds
    run = sarif["runs"][0]
    assert Counter(r["properties"]["status"] for r in run["results"]) == with_file
    assert run["properties"]["resultsWithoutFile"] == {
        "total": sum(without_file.values()),
        "byTarget": dict(sorted(without_file.items())),
    }
    notes = [n for n in run["invocations"][0]["toolExecutionNotifications"] if n["level"] == "note"]
    assert len(notes) == len(without_file)
    for target, count in without_file.items():
        assert any(
            n["message"]["text"].startswith(f"{count} result(s) of {target} ") for n in notes
        )
    rules = run["tool"]["driver"]["rules"]
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["kind"] == ("review" if result["properties"]["status"] == "error" else "fail")
        assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    errors = [
        n for n in run["invocations"][0]["toolExecutionNotifications"] if n["level"] == "error"
    ]
    assert errors  # the unreachable target


def test_fingerprints_tell_same_named_subjects_of_two_files_apart(tmp_path):
    doc = snapshot_document("k8s-snapshot://deploy", "a.yaml:3")
    twin = copy.deepcopy(doc["results"][0])
    twin["subject"]["location"] = "b.yaml:3"
    moved = copy.deepcopy(doc["results"][0])
    moved["subject"]["location"] = "a.yaml:40"  # the same object, lines added above it
    doc["results"] += [twin, moved]
    sarif = json.loads(SarifReporter(SourceRoot(tmp_path)).render(doc))
    prints = [r["partialFingerprints"]["auditorSubject/v2"] for r in sarif["runs"][0]["results"]]
    assert prints[0] != prints[1] and prints[0] == prints[2]


def snapshot_document(url: str, location: str) -> dict:
    doc = copy.deepcopy(fixture_document())
    doc["targets"] = [dict(doc["targets"][0], name="snap", url=url, error=None)]
    result = next(r for r in doc["results"] if r["status"] == "fail")
    doc["results"] = [
        dict(result, target="snap", subject=dict(result["subject"], location=location))
    ]
    return doc


def test_snapshot_files_are_relative_to_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "deploy" / "k8s").mkdir(parents=True)
    (tmp_path / "deploy" / "k8s" / "app deploy.yaml").write_text("kind: Pod\n")
    monkeypatch.chdir(tmp_path)
    doc = snapshot_document("k8s-snapshot://deploy/k8s", "app deploy.yaml:17")
    sarif = json.loads(SarifReporter(SourceRoot.detect()).render(doc))
    validate(sarif)
    run = sarif["runs"][0]
    physical = run["results"][0]["locations"][0]["physicalLocation"]
    assert physical == {
        "artifactLocation": {"uri": "deploy/k8s/app%20deploy.yaml", "uriBaseId": "%SRCROOT%"},
        "region": {"startLine": 17},
    }
    assert run["originalUriBaseIds"] == {"%SRCROOT%": {"uri": tmp_path.resolve().as_uri() + "/"}}
    assert "versionControlProvenance" not in run  # not a git work tree
    # a one-file snapshot names the file itself
    one = snapshot_document(
        "k8s-snapshot://deploy/k8s/app deploy.yaml", "deploy/k8s/app deploy.yaml:2"
    )
    uri = json.loads(SarifReporter(SourceRoot.detect()).render(one))["runs"][0]["results"][0]
    assert uri["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == (
        "deploy/k8s/app%20deploy.yaml"
    )


def test_a_file_outside_the_source_root_is_an_absolute_uri(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tmp_path / "src").mkdir()
    doc = snapshot_document(f"k8s-snapshot://{outside}", "pod.yaml:4")
    sarif = json.loads(SarifReporter(SourceRoot(tmp_path / "src")).render(doc))
    validate(sarif)
    artifact = sarif["runs"][0]["results"][0]["locations"][0]["physicalLocation"][
        "artifactLocation"
    ]
    assert artifact == {"uri": (outside / "pod.yaml").as_uri()}


def git(cwd, *args):
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()


def test_in_a_git_work_tree_paths_are_from_its_top_with_provenance(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "deploy" / "k8s").mkdir(parents=True)
    (repo / "deploy" / "k8s" / "pod.yaml").write_text("kind: Pod\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "remote", "add", "origin", "https://ci-bot:s3cr3t-token@git.example.com/team/app.git")
    git(repo, "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "x")
    monkeypatch.chdir(repo / "deploy")  # run from a subdirectory of the work tree
    doc = snapshot_document("k8s-snapshot://k8s", "pod.yaml:1")
    text = SarifReporter().render(doc)
    assert "s3cr3t-token" not in text and "ci-bot" not in text
    sarif = json.loads(text)
    validate(sarif)
    run = sarif["runs"][0]
    artifact = run["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert artifact == {"uri": "deploy/k8s/pod.yaml", "uriBaseId": "%SRCROOT%"}
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == repo.resolve().as_uri() + "/"
    assert run["versionControlProvenance"] == [
        {
            "repositoryUri": "https://git.example.com/team/app.git",
            "revisionId": git(repo, "rev-parse", "HEAD"),
            "branch": "main",
            "mappedTo": {"uriBaseId": "%SRCROOT%"},
        }
    ]
