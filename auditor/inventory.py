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

from auditor.config import TargetSpec, connection_settings, setting_value
from auditor.errors import InputError, InventoryError
from auditor.yamlsrc import load_yaml


def _settings_model() -> type[BaseModel]:
    """What a layer of an inventory (defaults, a group, a host) may set: every connection
    setting TargetSpec declares with an inventory key, and `vars`."""
    keys: dict[str, Any] = {
        setting.inventory_key: (setting.inventory_type, None)
        for _, setting, _ in connection_settings()
        if setting.inventory_key
    }
    return pydantic.create_model(
        "_Settings",
        __config__=ConfigDict(extra="forbid"),
        vars=(dict[str, Any], Field(default_factory=dict)),
        **keys,
    )


_Settings = _settings_model()


class _Host(_Settings):  # type: ignore[valid-type,misc]
    url: str | None = None
    host: str | None = None


class _Group(_Settings):  # type: ignore[valid-type,misc]
    hosts: list[str] = Field(default_factory=list)


class _Inventory(BaseModel):
    model_config = ConfigDict(extra="forbid")

    defaults: _Settings = Field(default_factory=_Settings)  # type: ignore[valid-type]
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
        layers: list[BaseModel] = [inventory.defaults]
        layers += [g for g in inventory.groups.values() if name in g.hosts]
        layers.append(host)
        url = host.url or f"ssh://{host.host or name}"
        line = doc.line_of(["hosts", name])
        spec = replace(base, url=url, name=name, source=f"{path}:{line}")
        try:
            spec.address  # noqa: B018 - parsed once here, kept on the spec
        except InputError as exc:
            raise InventoryError(exc.reason, path=path, line=line, item=name) from None
        specs.append(_apply(spec, layers))
    return specs


def _apply(spec: TargetSpec, layers: list[BaseModel]) -> TargetSpec:
    variables = dict(spec.variables)
    changes: dict[str, Any] = {}
    for layer in layers:
        given = layer.model_dump(exclude_none=True)
        variables.update(given["vars"])
        for name, setting, _ in connection_settings():
            if setting.inventory_key in given:
                changes[name] = setting_value(setting, given[setting.inventory_key])
    return replace(spec, variables=variables, **changes)
