"""Connection settings are declared once, on TargetSpec: every declared setting is a flag of
`run` and `collect` and a key of the inventory, and a value given either way reaches the
target's spec."""

from __future__ import annotations

from typing import Any

import click
import pytest
import yaml

from auditor.cli.bundle import collect
from auditor.cli.run import run, target_specs
from auditor.config import TargetSpec, connection_settings
from auditor.errors import InventoryError

# A value for each kind of setting, as a flag (argv) and as the spec then holds it.
FLAG_VALUES: dict[str, tuple[list[str], Any]] = {
    "text": (["alice"], "alice"),
    "path": (["/etc/given"], "/etc/given"),
    "paths": (["/k/one", "/k/two"], ("/k/one", "/k/two")),
    "pairs": (["a=1", "b.c=x=y"], ("a=1", "b.c=x=y")),
    "switch": ([], True),
    "seconds": (["7.5"], 7.5),
    "mebibytes": (["8"], 8 * 1024**2),
}
INVENTORY_VALUES: dict[str, tuple[Any, Any]] = {
    "text": ("bob", "bob"),
    "path": ("/srv/file", "/srv/file"),
    "paths": (["/i/a", "/i/b"], ("/i/a", "/i/b")),
    "pairs": (["image.tag=1.2"], ("image.tag=1.2",)),
    "switch": (True, True),
    "seconds": (3.25, 3.25),
    "mebibytes": (2, 2 * 1024**2),
}
SETTINGS = connection_settings()
FLAGGED = [(name, setting) for name, setting, _ in SETTINGS if setting.flags]


def test_every_field_but_the_target_itself_is_a_declared_setting():
    declared = {name for name, _, _ in SETTINGS}
    # layer_cache is the run's (its store, or the user's cache), set by `auditor run`/`worker`
    own = {"url", "name", "variables", "source", "layer_cache"}
    assert declared | own == set(TargetSpec.__dataclass_fields__)
    assert all(setting.inventory_key for _, setting, _ in SETTINGS)


@pytest.mark.parametrize("command", [run, collect], ids=["run", "collect"])
@pytest.mark.parametrize(("name", "setting"), FLAGGED, ids=[n for n, _ in FLAGGED])
def test_each_setting_is_an_option_with_its_help(command, name, setting):
    options = {p.name: p for p in command.params if isinstance(p, click.Option)}
    assert name in options
    assert set(setting.flags) <= set(options[name].opts)
    assert options[name].help == setting.help


@pytest.mark.parametrize(("name", "setting"), FLAGGED, ids=[n for n, _ in FLAGGED])
def test_a_flag_reaches_the_spec(name, setting):
    values, expected = FLAG_VALUES[setting.kind]
    flag = setting.flags[-1]
    argv = ["-t", "ssh://h"] + ([a for v in values for a in (flag, v)] if values else [flag])
    context = run.make_context("run", argv)
    (spec,) = target_specs(dict(context.params))
    assert getattr(spec, name) == expected
    untouched = TargetSpec(url="ssh://h")
    for other, _, _ in SETTINGS:
        if other != name:
            assert getattr(spec, other) == getattr(untouched, other), other


@pytest.mark.parametrize(("name", "setting", "default"), SETTINGS, ids=[n for n, _, _ in SETTINGS])
def test_an_inventory_key_reaches_the_spec_over_the_flag(tmp_path, name, setting, default):
    value, expected = INVENTORY_VALUES[setting.kind]
    if name == "port":
        value, expected = 2222, 2222
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        yaml.safe_dump({"hosts": {"web1": {"host": "10.0.0.1", setting.inventory_key: value}}})
    )
    context = run.make_context("run", ["-i", str(inventory)])
    (spec,) = target_specs(dict(context.params))
    assert getattr(spec, name) == expected
    assert spec.url == "ssh://10.0.0.1" and spec.name == "web1"


def test_an_inventory_setting_of_the_wrong_type_names_file_line_and_host(tmp_path):
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("hosts:\n  web1:\n    connect_timeout: soon\n")
    with pytest.raises(InventoryError) as caught:
        target_specs(dict(run.make_context("run", ["-i", str(inventory)]).params))
    assert caught.value.path == str(inventory) and caught.value.item == "web1"
    assert caught.value.line == 3 and "connect_timeout" in caught.value.reason
