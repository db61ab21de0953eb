"""Target classes by URL scheme, imported on first use (no import-time work)."""

from __future__ import annotations

import importlib

from auditor.config import TargetSpec
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


def open_target(spec: TargetSpec) -> Target:
    """A (not yet connected) target for `spec`."""
    module_name, _, attr = SCHEMES[spec.address.scheme].partition(":")
    cls: type[Target] = getattr(importlib.import_module(module_name), attr)
    return cls(spec)
