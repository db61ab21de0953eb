"""Target URLs: scheme -> target class, imported on first use (no import-time work)."""

from __future__ import annotations

import importlib

from auditor.config import TargetSpec
from auditor.errors import InventoryError
from auditor.targets.address import address_problem, shown
from auditor.targets.base import Target

SCHEMES: dict[str, str] = {
    "local": "auditor.targets.local:LocalTarget",
    "ssh": "auditor.targets.ssh:SshTarget",
    "docker": "auditor.targets.docker:DockerTarget",
    "docker+ssh": "auditor.targets.docker:DockerTarget",
    "k8s": "auditor.targets.kubernetes:KubernetesTarget",
    "k8s-snapshot": "auditor.targets.snapshot:SnapshotTarget",
    "trivy": "auditor.targets.scanreport:ScanReportTarget",
    "grype": "auditor.targets.scanreport:ScanReportTarget",
}


def scheme_of(url: str) -> str:
    """The scheme of a target URL; InventoryError for URLs auditor cannot audit."""
    if "://" not in url:
        raise InventoryError(
            f"bad target URL {shown(url)}: expected SCHEME://..., e.g. local://, ssh://user@host",
        )
    scheme = url.split("://", 1)[0].lower()
    if scheme not in SCHEMES:
        known = ", ".join(f"{s}://" for s in SCHEMES)
        raise InventoryError(f"unknown target scheme {scheme[:40]!r} (known: {known})")
    rest = url.split("://", 1)[1]
    if scheme == "local" and rest not in ("", "/"):
        raise InventoryError(f"bad target URL {shown(url)}: local:// takes nothing after it")
    if scheme == "ssh" and (problem := address_problem(url, url, "ssh://[user@]host[:port]")):
        raise InventoryError(problem)
    if scheme in ("docker", "docker+ssh"):
        from auditor.targets.docker import url_problem

        if problem := url_problem(url):
            raise InventoryError(problem)
    if scheme == "k8s-snapshot" and not url.split("://", 1)[1].strip():
        raise InventoryError(f"bad target URL {url!r}: k8s-snapshot://FILE-OR-DIRECTORY", item=url)
    if scheme in ("trivy", "grype") and not url.split("://", 1)[1].strip():
        raise InventoryError(f"bad target URL {url!r}: {scheme}://REPORT.json", item=url)
    if scheme == "k8s" and not url.split("://", 1)[1].isprintable():
        raise InventoryError(f"bad target URL {url!r}: k8s://[CONTEXT]", item=url)
    return scheme


def open_target(spec: TargetSpec) -> Target:
    """A (not yet connected) target for `spec`."""
    module_name, _, attr = SCHEMES[scheme_of(spec.url)].partition(":")
    cls: type[Target] = getattr(importlib.import_module(module_name), attr)
    return cls(spec)
