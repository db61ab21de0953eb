"""Run settings: what to audit, with which profile, how, and which gates apply.

Precedence: command-line flags > environment (AUDITOR_*) > inventory / config file > defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from auditor.errors import InputError
from auditor.model import Severity
from auditor.target_url import TargetUrl, parse_target_url

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_COMMAND_TIMEOUT = 60.0
MAX_TIMEOUT = 86_400.0  # a day: larger values overflow the socket layer's time_t

MIB = 1024**2
DEFAULT_MAX_HOST_OUTPUT = 64 * MIB  # bytes of host script output read per host


@dataclass(frozen=True)
class Setting:
    """How the user gives one connection setting: its command-line flag and its inventory key.

    Declared once, on the TargetSpec field it sets; the CLI's options (`cli/run.py`) and the
    inventory's schema (`inventory.py`) are made from these declarations.
    """

    flags: tuple[str, ...]  # click declarations, e.g. ("-u", "--user"); () = inventory only
    help: str
    inventory_key: str | None  # the key in an inventory's defaults, groups and hosts
    inventory_type: Any  # what the inventory accepts (a pydantic annotation)
    kind: str = "text"  # text | path | paths | pairs | switch | seconds | mebibytes
    travels: bool = False  # sent to a distributed run's workers (never credentials or trust)

    @property
    def is_path(self) -> bool:
        return self.kind in ("path", "paths")


def _setting(
    default: Any,
    *flags: str,
    help: str,
    key: str | None,
    kind: str = "text",
    accepts: Any = None,
    travels: bool = False,
) -> Any:
    inventory_type = (
        accepts
        if accepts is not None
        else {
            "text": str,
            "path": str,
            "paths": str | list[str],
            "pairs": list[str],
            "switch": bool,
            "seconds": Annotated[float, Field(gt=0, le=MAX_TIMEOUT)],
            "mebibytes": Annotated[int, Field(ge=1)],
        }[kind]
    )
    declared = Setting(flags, help, key, inventory_type | None, kind, travels)
    return field(default=default, metadata={"setting": declared})


@dataclass(frozen=True)
class TargetSpec:
    """One target as the user named it, with its connection settings.

    Fields that do not apply to a target's kind are ignored by it (an SSH key by a Docker
    socket target). `variables` override the profile's variables for this target only.
    """

    url: str
    name: str = ""
    user: str | None = _setting(
        None,
        "-u",
        "--user",
        key="user",
        help="SSH user (default: URL, ~/.ssh/config, then $USER).",
        travels=True,
    )
    port: int | None = _setting(
        None,
        key="port",
        help="SSH port (default: URL, ~/.ssh/config, then 22).",
        accepts=Annotated[int, Field(ge=1, le=65535)],
        travels=True,
    )
    identity_files: tuple[str, ...] = _setting(
        (),
        "--identity",
        key="key",
        kind="paths",
        help="SSH private key file. Repeatable. Default: ssh-agent and ~/.ssh keys.",
    )
    sudo: bool = _setting(
        False,
        "--sudo",
        key="sudo",
        kind="switch",
        help="Run the host script through `sudo -n` (never prompts).",
        travels=True,
    )
    known_hosts: str | None = _setting(
        None,
        "--known-hosts",
        key="known_hosts",
        kind="path",
        help="known_hosts file (default ~/.ssh/known_hosts).",
    )
    accept_new_host_keys: bool = _setting(
        False,
        "--accept-new-host-keys",
        key="accept_new_host_keys",
        kind="switch",
        help="Trust unknown SSH host keys on first use (a changed key is still refused).",
    )
    ssh_config: str | None = _setting(
        None,
        "--ssh-config",
        key="ssh_config",
        kind="path",
        help="SSH client config (default ~/.ssh/config).",
    )
    tls_ca: str | None = _setting(
        None,
        "--tls-ca",
        key="tls_ca",
        kind="path",
        help="CA bundle that signed a tcp:// Docker daemon's certificate (verification is on).",
    )
    tls_cert: str | None = _setting(
        None,
        "--tls-cert",
        key="tls_cert",
        kind="path",
        help="Client certificate for Docker TLS.",
    )
    tls_key: str | None = _setting(
        None, "--tls-key", key="tls_key", kind="path", help="Client key for Docker TLS."
    )
    kubeconfig: str | None = _setting(
        None,
        "--kubeconfig",
        key="kubeconfig",
        kind="path",
        help="kubeconfig for k8s:// targets (default: $KUBECONFIG, then ~/.kube/config).",
    )
    connect_timeout: float = _setting(
        DEFAULT_CONNECT_TIMEOUT,
        "--connect-timeout",
        key="connect_timeout",
        kind="seconds",
        help="Seconds to connect to a target.",
        travels=True,
    )
    command_timeout: float = _setting(
        DEFAULT_COMMAND_TIMEOUT,
        "--command-timeout",
        key="command_timeout",
        kind="seconds",
        help="Seconds for the host script.",
        travels=True,
    )
    max_output: int = _setting(
        DEFAULT_MAX_HOST_OUTPUT,
        "--max-host-output",
        key="max_host_output",
        kind="mebibytes",
        help="MiB of output read from a host's script; past it the script is stopped and the "
        "section it was printing is an error.",
        travels=True,
    )
    helm_values: tuple[str, ...] = _setting(
        (),
        "--helm-values",
        key="helm_values",
        kind="paths",
        help="Values file for the Helm charts of k8s-snapshot:// directories. Repeatable.",
    )
    helm_set: tuple[str, ...] = _setting(
        (),
        "--helm-set",
        key="helm_set",
        kind="pairs",
        help="A value for the Helm charts of k8s-snapshot:// directories (helm --set "
        "KEY=VALUE). Repeatable.",
    )
    zone: str | None = _setting(
        None,
        key="zone",
        help="Network zone: the queue whose workers audit this target in a distributed run.",
    )
    variables: dict[str, Any] = field(default_factory=dict)
    source: str | None = None  # inventory file and line, for error messages
    # Where image layer findings are kept between runs (a store URL, auditor.store.layers);
    # None: every layer is read on every run. Set by `auditor run` and `auditor worker`.
    layer_cache: str | None = None

    @property
    def display_name(self) -> str:
        return self.name or self.url

    @cached_property
    def address(self) -> TargetUrl:
        """The URL's parts, parsed on first use; InventoryError when auditor cannot audit it."""
        return parse_target_url(self.url)


def connection_settings() -> list[tuple[str, Setting, Any]]:
    """(TargetSpec field name, its Setting, its default) for every connection setting."""
    return [
        (f.name, f.metadata["setting"], f.default)
        for f in fields(TargetSpec)
        if "setting" in f.metadata
    ]


def setting_value(setting: Setting, value: Any) -> Any:
    """A value from a flag or an inventory key, as TargetSpec holds it (paths expanded to
    strings; a single key file as a one-item tuple)."""
    if value is None:
        return None
    if setting.kind == "paths":
        items = [value] if isinstance(value, str | Path) else list(value)
        return tuple(str(Path(item).expanduser()) for item in items)
    if setting.kind == "path":
        return str(Path(value).expanduser())
    if setting.kind == "mebibytes":
        return int(value) * MIB
    if setting.kind == "pairs":
        return tuple(_pair(str(item), setting) for item in value)
    return value


def _pair(text: str, setting: Setting) -> str:
    """`text` when it is a KEY=VALUE pair; InputError naming the option otherwise."""
    key, sep, _ = text.partition("=")
    if not sep or not key:
        flag = setting.flags[-1] if setting.flags else setting.inventory_key
        raise InputError(f"bad {flag} {text!r}: expected KEY=VALUE", item=text)
    return text


@dataclass(frozen=True)
class Gates:
    """Conditions under which a finished run exits 1."""

    fail_under: float | None = None  # overall score below this
    fail_on: Severity | None = None  # any failing result at or above this severity
    min_coverage: float | None = None  # coverage percentage below this
