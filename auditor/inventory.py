"""Inventory files: hosts, groups and per-host connection settings and variables (YAML).

    defaults: {user: audit, sudo: true, key: ~/.ssh/audit_ed25519, vars: {...}}
    hosts:
      web1: {url: "ssh://10.0.0.1"}
      db1: {host: db1.example.com, port: 2222, vars: {...}}
    groups:
      web: {hosts: [web1], sudo: false, vars: {...}}

Settings apply defaults < groups (in file order) < the host itself; `vars` merge the same way
and override the profile's variables for that host.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from auditor.config import MAX_TIMEOUT, TargetSpec
from auditor.errors import InputError, InventoryError
from auditor.targets import scheme_of
from auditor.yamlsrc import load_yaml


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    key: str | list[str] | None = None
    sudo: bool | None = None
    known_hosts: str | None = None
    ssh_config: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    kubeconfig: str | None = None
    connect_timeout: float | None = Field(default=None, gt=0, le=MAX_TIMEOUT)
    command_timeout: float | None = Field(default=None, gt=0, le=MAX_TIMEOUT)
    vars: dict[str, Any] = Field(default_factory=dict)


class _Host(_Settings):
    url: str | None = None
    host: str | None = None


class _Group(_Settings):
    hosts: list[str] = Field(default_factory=list)


class _Inventory(BaseModel):
    model_config = ConfigDict(extra="forbid")

    defaults: _Settings = Field(default_factory=_Settings)
    hosts: dict[str, _Host | None] = Field(default_factory=dict)
    groups: dict[str, _Group] = Field(default_factory=dict)


def load_inventory(path: Path, base: TargetSpec) -> list[TargetSpec]:
    """The targets of an inventory file, on top of the settings in `base` (from flags)."""
    doc = load_yaml(path, InventoryError)
    if not isinstance(doc.data, dict):
        raise InventoryError("expected a mapping with `hosts:`", path=path, line=1)
    try:
        inventory = _Inventory.model_validate(doc.data)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        item = str(loc[1]) if len(loc) > 1 and loc[0] in ("hosts", "groups") else None
        if err["type"] == "extra_forbidden":
            what = f"unknown key {loc[-1]!r}"
        else:
            where = ".".join(str(part) for part in (loc[2:] if item else loc))
            what = f"{where}: {err['msg']}" if where else err["msg"]
        raise InventoryError(what, path=path, line=doc.line_of(loc), item=item) from None
    if not inventory.hosts:
        raise InventoryError("no hosts", path=path, line=1)
    for group_name, group in inventory.groups.items():
        for index, member in enumerate(group.hosts):
            if member not in inventory.hosts:
                raise InventoryError(
                    f"group {group_name!r} names unknown host {member!r}",
                    path=path,
                    line=doc.line_of(["groups", group_name, "hosts", index]),
                    item=member,
                )
    specs = []
    for name, host in inventory.hosts.items():
        host = host or _Host()
        layers: list[_Settings] = [inventory.defaults]
        layers += [g for g in inventory.groups.values() if name in g.hosts]
        layers.append(host)
        url = host.url or f"ssh://{host.host or name}"
        line = doc.line_of(["hosts", name])
        try:
            scheme_of(url)
        except InputError as exc:
            raise InventoryError(exc.reason, path=path, line=line, item=name) from None
        specs.append(_apply(replace(base, url=url, name=name, source=f"{path}:{line}"), layers))
    return specs


def _apply(spec: TargetSpec, layers: list[_Settings]) -> TargetSpec:
    variables = dict(spec.variables)
    changes: dict[str, Any] = {}
    for layer in layers:
        variables.update(layer.vars)
        for field in (
            "user",
            "port",
            "sudo",
            "known_hosts",
            "ssh_config",
            "tls_ca",
            "tls_cert",
            "tls_key",
            "kubeconfig",
            "connect_timeout",
            "command_timeout",
        ):
            value = getattr(layer, field)
            if value is not None:
                changes[field] = value
        if layer.key is not None:
            keys = [layer.key] if isinstance(layer.key, str) else layer.key
            changes["identity_files"] = tuple(str(Path(k).expanduser()) for k in keys)
    return replace(spec, variables=variables, **changes)
