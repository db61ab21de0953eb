"""Score and words agree, end to end: a fleet of one good target and one unreachable host.

The host that cannot be reached has no score, does not pull the fleet's score down, lowers
coverage, appears once in every report as "not audited: reason", and still trips the gates.
"""

from __future__ import annotations

import csv
import io
import json
import socket
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

HARDENED = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  template:
    spec:
      automountServiceAccountToken: false
      securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      containers:
        - name: web
          image: registry.example.org/web@sha256:DIGEST
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: {drop: [ALL]}
          resources: {limits: {cpu: 500m, memory: 256Mi}}
""".replace("DIGEST", "0123456789abcdef" * 4)
FORMATS = ("json", "html", "pdf", "csv", "junit", "sarif", "markdown", "oscal")


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory) -> str:
    directory = tmp_path_factory.mktemp("manifests")
    (directory / "web.yaml").write_text(HARDENED)
    return f"k8s-snapshot://{directory}"


def run(auditor_cli, tmp_path: Path, targets: list[str], *gates: str):
    out = {fmt: tmp_path / f"report.{fmt}" for fmt in FORMATS}
    args = ["run", "--no-store", "--connect-timeout", "5", "-r", "terminal:-"]
    args += [a for t in targets for a in ("-t", t)]
    args += [a for fmt, path in out.items() for a in ("-r", f"{fmt}:{path}")]
    result = auditor_cli(*args, *gates)
    return result, json.loads(out["json"].read_text()), out


def test_an_unreachable_host_lowers_coverage_not_the_score(auditor_cli, snapshot, tmp_path):
    _, alone, _ = run(auditor_cli, tmp_path / "alone", [snapshot])
    host = f"ssh://nobody@127.0.0.1:{closed_port()}"
    result, fleet, out = run(auditor_cli, tmp_path / "fleet", [snapshot, host])
    assert result.code == 0, result.err  # no gate asked for
    assert fleet["score"]["overall"]["value"] == alone["score"]["overall"]["value"] is not None
    assert fleet["score"]["overall"]["coverage"] < alone["score"]["overall"]["coverage"]
    mine = fleet["score"]["by_target"][host]
    assert mine["value"] is None and mine["grade"] is None and mine["coverage"] == 0.0
    # once, not one error row per check
    (down,) = fleet["not_audited"]
    assert down["target"] == host and "refused" in down["reason"] and down["checks"] > 20
    assert not [r for r in fleet["results"] if r["target"] == host]
    line = f"not audited: {down['reason']}"
    assert result.out.count(line) == 1
    table = list(csv.DictReader(io.StringIO(out["csv"].read_text(), newline="")))
    assert [r["message"] for r in table if r["target"] == host] == [line]
    suites = {s.get("name"): s for s in ET.parse(out["junit"]).getroot()}
    cases = suites[host].findall("testcase")
    assert len(cases) == 1 and cases[0].find("error").get("message").startswith(line)
    sarif = json.loads(out["sarif"].read_text())["runs"][0]
    notes = sarif["invocations"][0]["toolExecutionNotifications"]
    assert [n["message"]["text"] for n in notes if n["level"] == "error"] == [f"{host}: {line}"]
    assert not [r for r in sarif["results"] if host in json.dumps(r["locations"])]
    assert "### Not audited" in out["markdown"].read_text()
    oscal = json.loads(out["oscal"].read_text())
    assert json.dumps(oscal).count(f"Not audited: {down['reason']}") == 1
    for text in (
        out["html"].read_text(),
        subprocess.run(
            ["pdftotext", str(out["pdf"]), "-"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout,  # fmt: skip
    ):
        # the target's own lines (table of targets, its facts), never a row per check
        words = " ".join(text.split())
        assert 1 <= words.count(f"Not audited: {down['reason']}") <= 2
        assert words.count(host) < down["checks"]


def test_min_coverage_and_fail_on_still_gate_on_the_unreachable_host(
    auditor_cli, snapshot, tmp_path
):
    host = f"ssh://nobody@127.0.0.1:{closed_port()}"
    gates = ("--fail-on", "critical", "--min-coverage", "50")
    good, _, _ = run(auditor_cli, tmp_path / "alone", [snapshot], *gates)
    assert good.code == 0, good.err
    fleet, doc, _ = run(auditor_cli, tmp_path / "fleet", [snapshot, host], *gates)
    assert fleet.code == 1
    critical = doc["not_audited"][0]["checks_by_severity"]["critical"]
    assert f"{critical} result(s) of severity critical or worse could not be evaluated" in fleet.err
    assert f"coverage {doc['score']['overall']['coverage']}% is below 50%" in fleet.err
