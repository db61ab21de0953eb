"""Target URLs: scheme -> target class, imported on first use (no import-time work)."""

from __future__ import annotations

import importlib
from urllib.parse import urlsplit

from auditor.config import TargetSpec
from auditor.errors import InventoryError
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
            f"bad target URL {url!r}: expected SCHEME://..., e.g. local://, ssh://user@host",
            item=url,
        )
    scheme = url.split("://", 1)[0].lower()
    if scheme not in SCHEMES:
        known = ", ".join(f"{s}://" for s in SCHEMES)
        raise InventoryError(f"unknown target scheme {scheme!r} (known: {known})", item=url)
    if scheme == "ssh":
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            raise InventoryError(f"bad port in target URL {url!r}", item=url) from None
        if not parts.hostname or (port is not None and not 0 < port < 65536):
            raise InventoryError(f"bad target URL {url!r}: ssh://[user@]host[:port]", item=url)
    if scheme in ("docker", "docker+ssh"):
        from auditor.targets.docker import url_problem

        if problem := url_problem(url):
            raise InventoryError(problem, item=url)
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
