"""Helm charts and Kustomizations in a snapshot directory, rendered to manifests with the
user's own tools (`helm template`, `kustomize build` or `kubectl kustomize`).

A directory holding `Chart.yaml` is a chart and one holding `kustomization.yaml` is a
Kustomization; their files are templates and patches, not manifests, so they are rendered
instead of read. Nothing from the chart runs beyond what the tool itself does: Kustomize
plugins and exec functions stay disabled (no `--enable-alpha-plugins`, `--enable-exec`,
`--enable-helm`), Helm is never asked to fetch dependencies or to post-render. Every
rendering has a timeout; a missing tool or a failed rendering is a TargetError naming the
directory, with the tool's stderr or the command that would render it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from auditor.errors import TargetError

CHART_FILE = "Chart.yaml"
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml")
MAX_STDERR = 600  # characters of a failed tool's stderr kept in the error line
MAX_KUSTOMIZATION_BYTES = 1_000_000  # larger ones are not read for their bases (kustomize is)

_SOURCE = re.compile(r"^# Source: (.+?)\s*$", re.M)
_SEPARATOR = re.compile(r"^---[ \t]*$", re.M)


@dataclass(frozen=True)
class RenderOptions:
    """What the user gave for rendering: Helm values files and `--set` pairs, and a timeout."""

    helm_values: tuple[str, ...] = ()
    helm_set: tuple[str, ...] = ()
    timeout: float = 60.0


@dataclass(frozen=True)
class Renderable:
    """A chart or Kustomization directory, and the file that made it one."""

    tool: str  # "helm" or "kustomize"
    directory: Path
    marker: Path  # Chart.yaml or kustomization.yaml


@dataclass(frozen=True)
class RenderedPart:
    """Part of a rendering: manifests text and the location its objects are given."""

    text: str
    location: str


def renderables(root: Path, files: list[Path]) -> tuple[list[Renderable], set[Path]]:
    """The charts and top-level Kustomizations under `root`, and every file they own (not to be
    read as manifests). A chart inside a chart (`charts/`) belongs to its parent; a
    Kustomization that another one builds on (a base, a component) is rendered through it."""
    markers = [p for p in files if p.name == CHART_FILE or p.name in KUSTOMIZATION_FILES]
    charts = sorted({p.parent for p in markers if p.name == CHART_FILE})
    charts = [c for c in charts if not any(o != c and o in c.parents for o in charts)]
    kustomizations = {
        p.parent: p
        for p in markers
        if p.name in KUSTOMIZATION_FILES and not any(c in p.parents for c in charts)
    }
    referenced: set[Path] = set()
    for directory, marker in kustomizations.items():
        referenced.update(_kustomize_references(directory, marker))
    found = [Renderable("helm", c, c / CHART_FILE) for c in charts]
    found += [
        Renderable("kustomize", d, m)
        for d, m in sorted(kustomizations.items())
        if d.resolve() not in referenced
    ]
    owners = [*charts, *kustomizations]
    owned = {f for f in files if any(o in f.parents for o in owners) or f.resolve() in referenced}
    return found, owned


def _kustomize_references(directory: Path, marker: Path) -> Iterator[Path]:
    """The local paths (resolved) a kustomization file builds on; remote ones are left out."""
    try:
        if marker.stat().st_size > MAX_KUSTOMIZATION_BYTES:
            return
        data = yaml.safe_load(marker.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return  # kustomize itself reports what is wrong with it
    if not isinstance(data, dict):
        return
    for key in ("resources", "bases", "components"):
        entries = data.get(key)
        for entry in entries if isinstance(entries, list) else ():
            if isinstance(entry, str) and "://" not in entry:
                yield (directory / entry).resolve()


def render(item: Renderable, root: Path, options: RenderOptions) -> list[RenderedPart]:
    """The manifests `item` renders to, each part with the location its objects get."""
    where = shown(item.directory, root)
    if item.tool == "helm":
        command = _helm_command(item.directory, options)
        output = _run(command, where, options.timeout, _helm_hint(where))
        return list(_helm_parts(output, item.directory, root))
    command = _kustomize_command(item.directory)
    output = _run(command, where, options.timeout, _kustomize_hint(where))
    return [RenderedPart(output, shown(item.marker, root))]


def shown(path: Path, root: Path) -> str:
    """`path` as results show it: relative to the snapshot directory."""
    if path == root:
        return root.as_posix()
    return path.relative_to(root).as_posix()


def _helm_command(chart: Path, options: RenderOptions) -> list[str] | None:
    helm = shutil.which("helm")
    if helm is None:
        return None
    command = [helm, "template", "release-name", str(chart)]
    for values in options.helm_values:
        command += ["--values", values]
    for pair in options.helm_set:
        command += ["--set", pair]
    return command


def _kustomize_command(directory: Path) -> list[str] | None:
    kustomize = shutil.which("kustomize")
    if kustomize is not None:
        return [kustomize, "build", str(directory)]
    kubectl = shutil.which("kubectl")
    if kubectl is not None:
        return [kubectl, "kustomize", str(directory)]
    return None


def _helm_hint(shown: str) -> str:
    return (
        f"{shown}: a Helm chart, and helm is not on PATH: install helm, or render it yourself "
        f"(helm template {shown} > rendered.yaml) and audit k8s-snapshot://rendered.yaml"
    )


def _kustomize_hint(shown: str) -> str:
    return (
        f"{shown}: a Kustomization, and neither kustomize nor kubectl is on PATH: install one, "
        f"or render it yourself (kubectl kustomize {shown} > rendered.yaml) and audit "
        "k8s-snapshot://rendered.yaml"
    )


def _run(command: list[str] | None, where: str, timeout: float, missing: str) -> str:
    """The stdout of `command`; TargetError when it is missing, fails or runs too long."""
    if command is None:
        raise TargetError(missing)
    verb = f"{Path(command[0]).name} {command[1]}"
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}  # a remote base never waits for a password
    try:
        # A session of its own, so that a timeout ends the tool's children too (they would
        # otherwise hold its pipes open).
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
    except OSError as exc:
        raise TargetError(f"{where}: cannot run {verb}: {exc.strerror}") from None
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise TargetError(f"{where}: {verb} did not finish in {timeout:g} s") from None
    if process.returncode != 0:
        message = " ".join(stderr.decode("utf-8", "replace").split())
        if len(message) > MAX_STDERR:
            message = message[:MAX_STDERR] + "..."
        raise TargetError(
            f"{where}: {verb} failed (exit {process.returncode}): {message or 'no message'}"
        )
    try:
        return stdout.decode("utf-8")
    except UnicodeDecodeError:
        raise TargetError(f"{where}: {verb} printed text that is not UTF-8") from None


def _helm_parts(output: str, chart: Path, root: Path) -> Iterator[RenderedPart]:
    """The documents of `helm template` output, each located at the template it came from
    (helm's `# Source: CHART/templates/x.yaml` comment, CHART being the chart's name); a
    document without one is located at the chart's Chart.yaml."""
    for document in _SEPARATOR.split(output):
        if not document.strip():
            continue
        source = _SOURCE.search(document)
        if source is None:
            yield RenderedPart(document, shown(chart / CHART_FILE, root))
            continue
        within = Path(*Path(source.group(1)).parts[1:])  # the chart's name, then its files
        yield RenderedPart(document, shown(chart / within, root))
