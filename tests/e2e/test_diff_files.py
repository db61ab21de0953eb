"""`auditor diff A B` over results files (CI with --no-store), stored runs, or one of each;
runs judged by different profiles, or of no common target, are refused without --force."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from report_docs import fixture_document

from auditor.document import dumps

PRIVILEGED = """\
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop}
spec:
  containers:
    - name: web
      image: nginx:1.27
      securityContext: {privileged: true}
"""


def ci_run(auditor_cli, manifests: Path, out: Path, *extra: str) -> None:
    done = auditor_cli(
        "run", "-q", "--no-store", "-t", "k8s-snapshot://k8s", "-r", f"json:{out}", *extra
    )
    assert done.code == 0, done.err


def test_two_ci_results_files(auditor_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s" / "web.yaml").write_text(PRIVILEGED)
    ci_run(auditor_cli, tmp_path / "k8s", tmp_path / "before.json")
    (tmp_path / "k8s" / "web.yaml").write_text(
        PRIVILEGED.replace("privileged: true", "privileged: false")
    )
    ci_run(auditor_cli, tmp_path / "k8s", tmp_path / "after.json")
    done = auditor_cli("diff", "before.json", "after.json", "--format", "json")
    assert done.code == 0, done.err
    assert done.err == ""  # same profile, same target: nothing to warn about
    drift = json.loads(done.out)
    fixed = {(e["check_id"], e["subject"]["name"]) for e in drift["fixed"]}
    assert ("k8s.pod.no-privileged", "shop/web") in fixed
    assert drift["new_failures"] == []
    table = auditor_cli("diff", "before.json", "after.json")
    assert table.code == 0 and "Fixed (" in table.out


def write(path: Path, doc: dict) -> str:
    path.write_text(dumps(doc))
    return str(path)


def test_a_different_profile_is_refused_without_force(auditor_cli, tmp_path):
    a = fixture_document()
    b = copy.deepcopy(a)
    b["run"]["profile"]["version"] = "1999.1"
    b["run"]["profile"]["overlays"] = ["strict.yaml"]
    args = ("diff", write(tmp_path / "a.json", a), write(tmp_path / "b.json", b))
    refused = auditor_cli(*args)
    assert refused.code == 2 and refused.out == ""
    first = refused.err.splitlines()[0]
    assert first.startswith("auditor: error: A and B are not comparable: profile version differs")
    assert "overlays differs: none in A, strict.yaml in B" in first
    assert "--force" in refused.err
    forced = auditor_cli(*args, "--force", "--format", "json")
    assert forced.code == 0
    assert "auditor: warning: profile version differs" in forced.err
    assert json.loads(forced.out)["b"]["profile"].endswith("1999.1")


def test_targets_in_part_different_warn_and_none_in_common_is_refused(auditor_cli, tmp_path):
    a = fixture_document()
    b = copy.deepcopy(a)
    gone = b["targets"].pop()["name"]
    b["results"] = [r for r in b["results"] if r["target"] != gone]
    partly = auditor_cli("diff", write(tmp_path / "a.json", a), write(tmp_path / "b.json", b))
    assert partly.code == 0
    assert f"auditor: warning: A and B cover different targets; only in A: {gone}" in partly.err
    c = copy.deepcopy(a)
    for target in c["targets"]:
        target["name"] = "other-" + target["name"]
    disjoint = auditor_cli("diff", str(tmp_path / "a.json"), write(tmp_path / "c.json", c))
    assert disjoint.code == 2 and "no target in common" in disjoint.err


def test_a_stored_run_against_a_results_file(auditor_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s" / "web.yaml").write_text(PRIVILEGED)
    db = tmp_path / "runs.db"
    stored = auditor_cli(
        "run", "-q", "--db", str(db), "-t", "k8s-snapshot://k8s", "-r", "json:stored.json"
    )
    assert stored.code == 0, stored.err
    (tmp_path / "k8s" / "web.yaml").write_text(PRIVILEGED.replace("nginx:1.27", "nginx"))
    ci_run(auditor_cli, tmp_path / "k8s", tmp_path / "ci.json")
    done = auditor_cli("diff", "latest", "ci.json", "--db", str(db), "--format", "json")
    assert done.code == 0, done.err
    drift = json.loads(done.out)
    assert drift["a"]["id"] == json.loads((tmp_path / "stored.json").read_text())["run"]["id"]
    assert [e["check_id"] for e in drift["new_failures"]] == ["k8s.pod.image-tag"], drift["counts"]


def test_a_bad_results_file_is_an_input_error(auditor_cli, tmp_path):
    (tmp_path / "a.json").write_text("{not json")
    done = auditor_cli("diff", str(tmp_path / "a.json"), str(tmp_path / "a.json"))
    assert done.code == 2
    assert done.err.startswith(f"auditor: error: {tmp_path / 'a.json'}:1: not JSON")
