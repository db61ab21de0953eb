"""Run settings: what to audit, with which profile, how, and which gates apply.

Precedence: command-line flags > environment (AUDITOR_*) > inventory / config file > defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditor.model import Severity

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_COMMAND_TIMEOUT = 60.0
MAX_TIMEOUT = 86_400.0  # a day: larger values overflow the socket layer's time_t


@dataclass(frozen=True)
class TargetSpec:
    """One target as the user named it, with its connection settings.

    Fields that do not apply to a target's kind are ignored by it (an SSH key by a Docker
    socket target). `variables` override the profile's variables for this target only.
    """

    url: str
    name: str = ""
    user: str | None = None
    port: int | None = None
    identity_files: tuple[str, ...] = ()
    sudo: bool = False
    known_hosts: str | None = None
    accept_new_host_keys: bool = False
    ssh_config: str | None = None
    tls_ca: str | None = None  # Docker over TCP: CA bundle that signed the daemon's certificate
    tls_cert: str | None = None  # client certificate and key for Docker over TCP
    tls_key: str | None = None
    kubeconfig: str | None = None  # Kubernetes: kubeconfig file (default KUBECONFIG, ~/.kube)
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    command_timeout: float = DEFAULT_COMMAND_TIMEOUT
    variables: dict[str, Any] = field(default_factory=dict)
    source: str | None = None  # inventory file and line, for error messages

    @property
    def display_name(self) -> str:
        return self.name or self.url


@dataclass(frozen=True)
class Gates:
    """Conditions under which a finished run exits 1."""

    fail_under: float | None = None  # overall score below this
    fail_on: Severity | None = None  # any failing result at or above this severity
    min_coverage: float | None = None  # coverage percentage below this


@dataclass(frozen=True)
class RunConfig:
    """Everything one `auditor run` needs."""

    targets: tuple[TargetSpec, ...]
    profile: str
    overlays: tuple[Path, ...] = ()
    concurrency: int = 8
    workers: int | None = None  # processes a large group of subjects is shared with; None: auto
    gates: Gates = field(default_factory=Gates)
    variables: dict[str, Any] = field(default_factory=dict)
    progress: bool = False
