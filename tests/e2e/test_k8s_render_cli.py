"""Helm charts and Kustomizations in a `k8s-snapshot://` directory, rendered before they are
audited.

Kustomize is real: kubectl (on this machine's image) renders it offline. No helm binary can be
installed here (not in Debian's archive, not on PyPI), so for Helm these tests prove the
detection of a chart and the one-line error when helm is missing; the tests that put a fake
`helm` script first on PATH prove only what auditor does around Helm (the arguments it passes,
how it reads `# Source:` comments, timeouts, stderr on failure), not what Helm renders.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: nginx:1.27
"""

PRIVILEGED_PATCH = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers:
        - name: web
          securityContext:
            privileged: true
"""

CHART = "apiVersion: v2\nname: web\nversion: 0.1.0\n"
TEMPLATE = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-web
spec:
  template:
    spec:
      containers:
        - name: web
          image: {{ .Values.image }}
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def kustomize_tree(root: Path) -> Path:
    """A base and a `prod` overlay that patches its pod to run privileged, and a plain manifest
    beside them (read as it is)."""
    write(root / "base" / "deployment.yaml", DEPLOYMENT)
    write(root / "base" / "kustomization.yaml", "resources:\n  - deployment.yaml\n")
    write(
        root / "overlays" / "prod" / "kustomization.yaml",
        "resources:\n  - ../../base\nnamespace: prod\npatches:\n  - path: privileged.yaml\n",
    )
    write(root / "overlays" / "prod" / "privileged.yaml", PRIVILEGED_PATCH)
    write(root / "plain" / "api.yaml", DEPLOYMENT.replace("name: web\n", "name: api\n", 1))
    return root


def chart(root: Path) -> Path:
    write(root / "Chart.yaml", CHART)
    write(root / "values.yaml", "image: nginx:1.27\n")
    write(root / "templates" / "deployment.yaml", TEMPLATE)
    return root


def results(path: Path) -> list[dict]:
    return json.loads(path.read_text())["results"]


def only_path(tmp_path: Path, *tools: str) -> str:
    """A PATH holding only `tools` (links to the real ones), so that the others are missing."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in tools:
        real = shutil.which(tool)
        assert real, f"{tool} is not installed (kubectl is on this machine's image)"
        (bin_dir / tool).symlink_to(real)
    return str(bin_dir)


def fake_helm(bin_dir: Path, body: str) -> Path:
    """A `helm` shell script that records its arguments and runs `body`."""
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "helm"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{bin_dir}/argv"\n{body}\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_a_kustomize_overlay_is_rendered_and_its_patch_judged(auditor_cli, tmp_path):
    tree = kustomize_tree(tmp_path / "deploy")
    out = tmp_path / "results.json"
    result = auditor_cli("run", "-q", "-t", f"k8s-snapshot://{tree}", "-r", f"json:{out}")
    assert result.code in (0, 1), result.err
    privileged = {
        r["subject"]["name"]: r for r in results(out) if r["check_id"] == "k8s.pod.no-privileged"
    }
    # The overlay is rendered once (its base is not audited again on its own), located at
    # the kustomization that made it; the plain manifest beside it keeps its file and line.
    assert set(privileged) == {"prod/web", "default/api"}
    assert privileged["prod/web"]["status"] == "fail"
    assert privileged["prod/web"]["subject"]["location"] == "overlays/prod/kustomization.yaml"
    assert privileged["default/api"]["status"] == "pass"
    assert privileged["default/api"]["subject"]["location"] == "plain/api.yaml:1"
    assert not [r for r in results(out) if r["subject"]["kind"] == "File"]


def test_a_kustomization_at_the_root_is_rendered(auditor_cli, tmp_path):
    tree = kustomize_tree(tmp_path / "deploy")
    out = tmp_path / "results.json"
    target = f"k8s-snapshot://{tree / 'overlays' / 'prod'}"
    auditor_cli("run", "-q", "-t", target, "-r", f"json:{out}")
    found = [r for r in results(out) if r["check_id"] == "k8s.pod.no-privileged"]
    assert [(r["subject"]["name"], r["status"]) for r in found] == [("prod/web", "fail")]


def test_a_broken_kustomization_reports_kustomizes_stderr(auditor_cli, tmp_path):
    tree = kustomize_tree(tmp_path / "deploy")
    (tree / "overlays" / "prod" / "privileged.yaml").unlink()
    result = auditor_cli("run", "-q", "-t", f"k8s-snapshot://{tree}", "-r", "json:-")
    assert result.code == 3
    assert "overlays/prod: kubectl kustomize failed (exit 1): " in result.err
    assert "privileged.yaml" in result.err  # kustomize's own words about the missing patch


def test_kustomize_exec_plugins_stay_disabled(auditor_cli, tmp_path):
    """A generator that would run a program from the snapshot is refused by kustomize, because
    auditor never passes --enable-alpha-plugins / --enable-exec."""
    marker = tmp_path / "ran"
    tree = tmp_path / "deploy"
    write(tree / "kustomization.yaml", "generators:\n  - generator.yaml\n")
    write(
        tree / "generator.yaml",
        "apiVersion: example.com/v1\nkind: Runner\nmetadata:\n  name: x\n"
        "  annotations:\n    config.kubernetes.io/function: |\n      exec:\n"
        "        path: ./run.sh\n",
    )
    script = write(tree / "run.sh", f"#!/bin/sh\ntouch {marker}\n")
    script.chmod(0o755)
    result = auditor_cli("run", "-q", "-t", f"k8s-snapshot://{tree}", "-r", "json:-")
    assert result.code == 3
    assert "kubectl kustomize failed" in result.err
    assert "external plugins disabled" in result.err
    assert not marker.exists()


def test_without_kustomize_or_kubectl_one_line_says_how_to_render(
    auditor_cli, tmp_path, monkeypatch
):
    tree = kustomize_tree(tmp_path / "deploy")
    monkeypatch.setenv("PATH", only_path(tmp_path))
    out = tmp_path / "results.json"
    result = auditor_cli("run", "-q", "-t", f"k8s-snapshot://{tree}", "-r", f"json:{out}")
    assert result.code == 3
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert (
        "overlays/prod: a Kustomization, and neither kustomize nor kubectl is on PATH" in lines[0]
    )
    assert "kubectl kustomize overlays/prod > rendered.yaml" in lines[0]
    # No error per unreadable template or patch: the target has one reason (and whatever
    # results stand for a target not audited carry that reason only).
    errors = [r for r in results(out) if r["status"] == "error"]
    assert {r["message"] for r in errors} <= {
        f"target could not be audited: {json.loads(out.read_text())['targets'][0]['error']}"
    }


def test_a_chart_without_helm_gives_one_line_saying_how_to_render(
    auditor_cli, tmp_path, monkeypatch
):
    tree = tmp_path / "deploy"
    chart(tree / "charts" / "web")
    monkeypatch.setenv("PATH", only_path(tmp_path, "kubectl"))
    out = tmp_path / "results.json"
    result = auditor_cli("run", "-q", "-t", f"k8s-snapshot://{tree}", "-r", f"json:{out}")
    assert result.code == 3
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert "charts/web: a Helm chart, and helm is not on PATH" in lines[0]
    assert "helm template charts/web > rendered.yaml" in lines[0]
    assert not [r for r in results(out) if "not valid YAML" in r["message"]]
    assert json.loads(out.read_text())["targets"][0]["error"].startswith("charts/web: a Helm")


HELM_OUTPUT = """\
---
# Source: web/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: release-name-web
spec:
  template:
    spec:
      containers:
        - name: web
          image: nginx:1.27
          securityContext: {privileged: true}
---
# Source: web/charts/cache/templates/statefulset.yaml
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: release-name-cache
spec:
  template:
    spec:
      containers:
        - name: cache
          image: redis:7
"""


def test_helm_arguments_and_source_comments(auditor_cli, tmp_path, monkeypatch):
    """With a fake helm: proves the arguments auditor passes and how it locates what helm
    printed, not Helm's rendering."""
    tree = tmp_path / "deploy"
    chart(tree / "web")
    write(tree / "web" / "charts" / "cache" / "Chart.yaml", CHART.replace("web", "cache"))
    values = write(tmp_path / "prod-values.yaml", "image: nginx:1.28\n")
    bin_dir = tmp_path / "fakebin"
    output = write(tmp_path / "helm-output.yaml", HELM_OUTPUT)
    fake_helm(bin_dir, f'cat "{output}"')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "results.json"
    auditor_cli(
        "run", "-q", "-t", f"k8s-snapshot://{tree}", "-r", f"json:{out}",
        "--helm-values", str(values), "--helm-set", "replicas=2", "--helm-set", "a.b=c",
    )  # fmt: skip
    argv = (bin_dir / "argv").read_text().splitlines()
    assert argv == [
        "template", "release-name", str(tree / "web"),
        "--values", str(values), "--set", "replicas=2", "--set", "a.b=c",
    ]  # fmt: skip
    privileged = {
        r["subject"]["name"]: r for r in results(out) if r["check_id"] == "k8s.pod.no-privileged"
    }
    assert privileged["default/release-name-web"]["status"] == "fail"
    assert privileged["default/release-name-web"]["subject"]["location"] == (
        "web/templates/deployment.yaml"
    )
    assert privileged["default/release-name-cache"]["subject"]["location"] == (
        "web/charts/cache/templates/statefulset.yaml"
    )


def test_a_failing_helm_reports_its_stderr(auditor_cli, tmp_path, monkeypatch):
    tree = chart(tmp_path / "chart")
    bin_dir = tmp_path / "fakebin"
    fake_helm(bin_dir, 'echo "Error: parse error at (web/templates/deployment.yaml:4)" >&2; exit 1')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    result = auditor_cli("run", "-q", "-t", f"k8s-snapshot://{tree}", "-r", "json:-")
    assert result.code == 3
    assert (
        f"{tree}: helm template failed (exit 1): "
        "Error: parse error at (web/templates/deployment.yaml:4)"
    ) in result.err


def test_rendering_has_a_timeout(auditor_cli, tmp_path, monkeypatch):
    tree = chart(tmp_path / "chart")
    bin_dir = tmp_path / "fakebin"
    fake_helm(bin_dir, "sleep 30")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    result = auditor_cli(
        "run", "-q", "-t", f"k8s-snapshot://{tree}", "-r", "json:-", "--command-timeout", "0.5"
    )
    assert result.code == 3
    assert "helm template did not finish in 0.5 s" in result.err


@pytest.mark.parametrize("pair", ["novalue", "=x"])
def test_a_bad_helm_set_is_bad_input(auditor_cli, tmp_path, pair):
    result = auditor_cli("run", "-q", "-t", f"k8s-snapshot://{tmp_path}", "--helm-set", pair)
    assert result.code == 2
    assert f"bad --helm-set {pair!r}: expected KEY=VALUE" in result.err
