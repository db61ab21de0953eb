"""`auditor run -t k8s-snapshot://...` end to end: a pipeline's pre-deploy check of manifests,
bad files reported with their file and line while everything else is judged."""

from __future__ import annotations

import json
from pathlib import Path

GOOD = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  template:
    spec:
      containers:
        - name: web
          image: nginx:latest
          securityContext: {privileged: true}
"""


def results(path: Path) -> list[dict]:
    return json.loads(path.read_text())["results"]


def test_a_manifest_directory_with_bad_files(auditor_cli, tmp_path):
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "web.yaml").write_text(GOOD)
    (manifests / "notyaml.yaml").write_text("kind: Pod\nmetadata: {name: [\n")
    (manifests / "nokind.yaml").write_text("apiVersion: v1\nmetadata: {name: x}\n")
    (manifests / "typo.json").write_text('{"apiVersion": "apps/v1", "kind": "Deploymnet"}')
    out = tmp_path / "results.json"
    result = auditor_cli(
        "run", "-q", "-t", f"k8s-snapshot://{manifests}", "-r", f"json:{out}", "--fail-on", "high"
    )
    assert result.code == 1, result.err  # the privileged Deployment fails a critical check
    found = results(out)
    privileged = [r for r in found if r["check_id"] == "k8s.pod.no-privileged"]
    by_name = {r["subject"]["name"]: r for r in privileged}
    assert by_name["shop/web"]["status"] == "fail"
    assert by_name["shop/web"]["subject"]["location"] == "web.yaml:1"
    assert by_name["notyaml.yaml"]["status"] == "error"
    assert by_name["notyaml.yaml"]["message"].startswith("notyaml.yaml:3: not valid YAML")
    assert by_name["nokind.yaml"]["message"] == "nokind.yaml:1: document without kind"
    assert by_name["typo.json"]["message"] == (
        "typo.json:1: unknown kind 'Deploymnet' for apiVersion apps/v1"
    )


def test_a_missing_snapshot_is_a_target_that_could_not_be_audited(auditor_cli, tmp_path):
    result = auditor_cli(
        "run", "-q", "-t", f"k8s-snapshot://{tmp_path / 'nothing'}", "-r", "json:-"
    )
    assert result.code == 3
    assert "no such file or directory" in result.err


def test_an_empty_snapshot_url_is_bad_input(auditor_cli):
    result = auditor_cli("run", "-q", "-t", "k8s-snapshot://")
    assert result.code == 2
    assert "k8s-snapshot://FILE-OR-DIRECTORY" in result.err
    assert "Traceback" not in result.err
