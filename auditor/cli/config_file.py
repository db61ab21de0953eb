"""The config file: command options as YAML, handed to click as the group's `default_map`.

Click applies it below the command line and the environment and above the built-in defaults,
so the precedence is flags > AUDITOR_* variables > config file > defaults. Files, first to
last, each overriding the one before: `$XDG_CONFIG_HOME/auditor/config.yaml`, then
`auditor.yaml` in the working directory; `--config FILE` replaces both.

    run:
      profile: nist-800-190
      target: [k8s-snapshot://deploy/k8s]
      report: [sarif:auditor.sarif, html:auditor-report.html]
      fail-on: high

A key is an option's long name (`fail-on`) or its parameter name (`fail_on`); an unknown
section or key, or a value the option refuses, is an input error naming file, line and key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
import yaml

from auditor.errors import InputError
from auditor.yamlsrc import YamlDocument, load_yaml

PROJECT_FILE = "auditor.yaml"


class ConfigError(InputError):
    """The config file is malformed."""


def config_files(explicit: Path | None) -> list[Path]:
    """The files that apply, lowest precedence first."""
    if explicit is not None:
        return [explicit]
    home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    candidates = [Path(home) / "auditor" / "config.yaml", Path(PROJECT_FILE)]
    return [path for path in candidates if path.is_file()]


def default_map(group: click.Group, ctx: click.Context, files: list[Path]) -> dict[str, Any]:
    """{command: {parameter: value}} from `files`, checked against the commands' options."""
    merged: dict[str, dict[str, Any]] = {}
    for path in files:
        source = load_yaml(path, ConfigError)
        if source.data is None:
            continue
        if not isinstance(source.data, dict):
            raise ConfigError("expected a mapping of commands, e.g. `run:`", path=path, line=1)
        for section, options in source.data.items():
            command = group.get_command(ctx, str(section)) if isinstance(section, str) else None
            if command is None:
                raise ConfigError(
                    f"unknown section (commands: {', '.join(group.list_commands(ctx))})",
                    path=path,
                    line=_key_line(source, [], section),
                    item=str(section),
                )
            values = _section(source, [str(section)], options, command, ctx)
            merged.setdefault(str(section), {}).update(values)
    return merged


def config_option() -> click.Option:
    """`--config FILE` on a command (`auditor run --config ci.yaml`): eager, so the file's
    values are in place before click reads any other option of the command."""
    return click.Option(
        ["--config", "config_file"],
        type=click.Path(path_type=Path, dir_okay=False),
        is_eager=True,
        expose_value=False,
        allow_from_autoenv=False,  # AUDITOR_CONFIG is read once, by `auditor` itself
        callback=_use_config_file,
        help="Config file (replaces auditor.yaml and the user's config.yaml).",
    )


def _use_config_file(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    if value is None or ctx.resilient_parsing:
        return
    names: list[str] = []  # the command's path below `auditor`: ["runs", "list"]
    here: click.Context | None = ctx
    while here is not None and here.parent is not None:
        names.insert(0, here.info_name or "")
        here = here.parent
    root = ctx.find_root()
    assert isinstance(root.command, click.Group)  # `auditor`
    values: Any = default_map(root.command, root, [value])
    for name in names:
        values = values.get(name, {})
    ctx.default_map = values


def _section(
    source: YamlDocument, path: list[str], options: Any, command: click.Command, ctx: click.Context
) -> dict[str, Any]:
    """The values of one command's section; a group's section holds its commands' sections."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise ConfigError(
            "expected a mapping of options", path=source.path, line=source.line_of(path)
        )
    name = " ".join(path)
    by_name = _options_by_name(command)
    values: dict[str, Any] = {}
    for key, value in options.items():
        line = _key_line(source, path, key)
        item = ".".join([*path, str(key)])
        param = by_name.get(str(key))
        sub = command.get_command(ctx, str(key)) if isinstance(command, click.Group) else None
        if sub is not None and param is None:
            values[str(key)] = _section(source, [*path, str(key)], value, sub, ctx)
            continue
        if param is None or param.name is None:
            raise ConfigError(
                f"unknown option of `auditor {name}` (see `auditor {name} --help`)",
                path=source.path,
                line=line,
                item=item,
            )
        if param.multiple and not isinstance(value, list):
            value = [value]
        try:
            param.type_cast_value(ctx, value)
        except click.BadParameter as exc:
            raise ConfigError(
                f"bad value: {exc.message}", path=source.path, line=line, item=item
            ) from None
        values[param.name] = value
    return values


def _key_line(source: YamlDocument, parents: list[str], key: Any) -> int | None:
    """1-based line of `key` itself in the mapping at `parents` (line_of gives its value's)."""
    node = source.root
    for part in parents:
        node = next((v for k, v in getattr(node, "value", ()) if k.value == part), None)
    for key_node, _value in getattr(node, "value", ()):
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(key):
            return int(key_node.start_mark.line) + 1
    return source.line_of([*parents, key])


def _options_by_name(command: click.Command) -> dict[str, click.Option]:
    """Each option under its long names without dashes (`fail-on`) and its parameter name."""
    found: dict[str, click.Option] = {}
    for param in command.params:
        if not isinstance(param, click.Option) or param.name is None or param.hidden:
            continue
        if not param.expose_value:  # --config itself, --help
            continue
        found[param.name] = param
        for flag in param.opts:  # not `--no-x`: that name would mean the opposite value
            if flag.startswith("--"):
                found[flag[2:]] = param
                found[flag[2:].replace("-", "_")] = param
    return found
