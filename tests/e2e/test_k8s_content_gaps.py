"""Kubernetes content fixes end to end (issue 18 item 4), through the CLI and every report
format: namespaces only implied by workloads are judged, legacy seccomp annotations count by
the Kubernetes version, invalid specs are errors naming the field, exemptions name their
variable, and a file named like a secret keeps its location."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from auditor.cli import main

FORMATS = ("json", "html", "pdf", "csv", "junit", "sarif", "markdown", "terminal")

# bootstrap-token.yaml: the name holds "token", the content is ordinary workloads.
WORKLOADS = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  template:
    metadata:
      annotations: {seccomp.security.alpha.kubernetes.io/pod: runtime/default}
    spec:
      containers: [{name: web, image: "registry.example.org/web:1.4"}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: node-agent, namespace: ops}
spec:
  template:
    spec:
      containers: [{name: agent, image: "registry.example.org/agent:2.0"}]
---
apiVersion: v1
kind: Pod
metadata: {name: broken, namespace: shop}
spec:
  containers:
    - name: app
      securityContext: {seccompProfile: {type: Localhost}}
"""


@pytest.fixture(scope="module")
def manifests(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("manifests")
    (directory / "bootstrap-token.yaml").write_text(WORKLOADS)
    return directory


def run(directory: Path, manifests: Path, formats: tuple[str, ...], *extra: str) -> dict[str, Path]:
    """`auditor run` on the manifests, writing each format under `directory`."""
    out = {fmt: directory / f"report.{fmt}" for fmt in formats}
    args = ["run", "-q", "--no-store", "-t", f"k8s-snapshot://{manifests}"]
    args += [a for fmt, path in out.items() for a in ("-r", f"{fmt}:{path}")]
    try:
        main([*args, "--var", "k8s_exempt_workloads=['ops/*']", *extra])
    except SystemExit as exc:
        assert exc.code in (0, None), exc.code
    return out


@pytest.fixture(scope="module")
def reports(manifests: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every format of one run with the shipped variables (rendering a PDF takes a while)."""
    return run(tmp_path_factory.mktemp("reports"), manifests, FORMATS)


def by_check(path: Path) -> dict[str, dict[str, dict]]:
    found: dict[str, dict[str, dict]] = {}
    for r in json.loads(path.read_text())["results"]:
        found.setdefault(r["check_id"], {})[r["subject"]["name"]] = r
    return found


def test_namespaces_only_used_by_workloads_are_judged(reports):
    results = by_check(reports["json"])
    for check in ("k8s.namespace.network-policy", "k8s.namespace.psa-enforce"):
        shop = results[check]["shop"]
        assert shop["status"] == "fail"
        assert shop["subject"]["location"] is None
        assert "(no Namespace object in the snapshot; used by " in shop["message"]
        assert "Deployment web" in shop["message"] and "Pod broken" in shop["message"]
    assert results["k8s.namespace.psa-enforce"]["ops"]["status"] == "fail"


def test_legacy_seccomp_annotations_count_only_before_1_27(reports, manifests, tmp_path):
    web = by_check(reports["json"])["k8s.pod.seccomp"]["shop/web"]
    assert web["status"] == "fail" and web["message"].endswith("(judged for Kubernetes 1.32)")
    old = run(tmp_path, manifests, ("json",), "--var", "k8s_snapshot_version='1.26'")
    assert by_check(old["json"])["k8s.pod.seccomp"]["shop/web"]["status"] == "pass"


def test_an_invalid_spec_is_an_error_naming_the_field(reports):
    results = by_check(reports["json"])
    broken = [r["shop/broken"] for r in results.values() if "shop/broken" in r]
    assert broken and {r["status"] for r in broken} == {"error"}
    message = broken[0]["message"]
    assert message.startswith("invalid pod spec, the API server would refuse it: ")
    assert "spec.containers[0] (app).image: missing" in message
    assert "spec.containers[0] (app).securityContext.seccompProfile.localhostProfile" in message


def test_exemptions_and_locations_show_in_every_report(reports):
    out = reports
    agent = by_check(out["json"])["k8s.pod.no-privileged"]["ops/node-agent"]
    assert agent["status"] == "skip"
    assert agent["message"] == "exempt by vars.k8s_exempt_workloads"
    assert agent["subject"]["location"] == "bootstrap-token.yaml:11"  # not redacted
    texts = {fmt: path.read_text() for fmt, path in out.items() if fmt != "pdf"}
    texts["pdf"] = subprocess.run(
        ["pdftotext", "-layout", str(out["pdf"]), "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    for fmt, text in texts.items():
        flat = " ".join(text.replace("\\", "").split())
        assert "vars.k8s_exempt_workloads" in flat, fmt
        assert not re.search(r"REDACTED fp=[0-9a-f]{12}", text), fmt  # nothing was redacted
    assert "bootstrap-token.yaml:11" in texts["html"]
    rows = list(csv.DictReader(io.StringIO(texts["csv"], newline="")))
    exempt = [r for r in rows if r["message"] == "exempt by vars.k8s_exempt_workloads"]
    assert exempt and {r["subject_location"] for r in exempt} == {"bootstrap-token.yaml:11"}
    skipped = [
        case.find("skipped")
        for case in ET.parse(out["junit"]).getroot().iter("testcase")
        if case.find("skipped") is not None
    ]
    assert "exempt by vars.k8s_exempt_workloads" in {s.get("message") for s in skipped}
    sarif = json.loads(texts["sarif"])["runs"][0]["results"]
    suppressed = [r for r in sarif if r["kind"] == "notApplicable"]
    assert suppressed and all(
        r["suppressions"][0]["justification"] == "exempt by vars.k8s_exempt_workloads"
        for r in suppressed
    )
    assert {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].rsplit("/", 1)[-1]
        for r in suppressed
    } == {"bootstrap-token.yaml"}
