"""The command line: flags, environment and files -> RunPlan -> runner -> ExitStatus.

Only this package catches broadly: every error becomes one line on stderr and an exit status
(see errors.ExitStatus); `--debug` shows the traceback as well. One module per command group.
"""

from __future__ import annotations

import gc
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from auditor import __version__, logs
from auditor.cli.config_file import PROJECT_FILE, config_files, config_option, default_map
from auditor.errors import AuditorError, ExitStatus

# command name -> "module:attribute", imported only when that command runs (or --help lists
# them): `auditor run` should not pay for the store's or the PDF renderer's imports.
COMMANDS: dict[str, str] = {
    "run": "auditor.cli.run:run",
    "report": "auditor.cli.report:report",
    "profiles": "auditor.cli.profiles:profiles",
    "runs": "auditor.cli.history:runs",
    "diff": "auditor.cli.history:diff_runs",
    "collect": "auditor.cli.bundle:collect",
    "evaluate": "auditor.cli.bundle:evaluate",
    "verify": "auditor.cli.bundle:verify",
    "schedule": "auditor.cli.schedule:schedule",
    "worker": "auditor.cli.worker:worker",
    "completion": "auditor.cli.completion:completion",
}
# Every option of a command is also read from AUDITOR_<COMMAND>_<NAME>; `run`'s, the ones CI
# sets most, from plain AUDITOR_<NAME> (AUDITOR_FAIL_ON, AUDITOR_REPORTS...).
ENV_PREFIX = "AUDITOR"
COMMAND_ENV_PREFIX = {"run": ENV_PREFIX}
COMMAND_ARGS = "auditor.command_args"  # ctx.meta key


class _LazyGroup(click.Group):
    """A click group whose commands live in modules imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """As click's, keeping the command's own arguments for the group's callback (which
        runs first) to see whether they hold a `--config`."""
        name, command, rest = super().resolve_command(ctx, args)
        ctx.meta[COMMAND_ARGS] = rest
        return name, command, rest

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, _, attr = target.partition(":")
        command: click.Command = getattr(importlib.import_module(module_name), attr)
        if cmd_name in COMMAND_ENV_PREFIX:
            command.context_settings.setdefault("auto_envvar_prefix", COMMAND_ENV_PREFIX[cmd_name])
        _show_envvars(command)
        _add_config_option(command)
        return command


def _add_config_option(command: click.Command) -> None:
    """Every command also takes `--config FILE` after its name, once."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _add_config_option(sub)
    elif not any(param.name == "config_file" for param in command.params):
        command.params.append(config_option())


def _show_envvars(command: click.Command) -> None:
    """`--help` names the variable of every option, whichever way the option was declared."""
    for param in command.params:
        if isinstance(param, click.Option):
            param.show_envvar = True
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _show_envvars(sub)


@click.group(
    cls=_LazyGroup,
    context_settings={
        "help_option_names": ["-h", "--help"],
        "max_content_width": 100,
        "auto_envvar_prefix": ENV_PREFIX,
    },
)
@click.version_option(__version__, prog_name="auditor")
@click.option(
    "--debug",
    is_flag=True,
    envvar="AUDITOR_DEBUG",
    show_envvar=True,
    help="Log details and show tracebacks.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="AUDITOR_CONFIG",
    show_envvar=True,
    help=f"Config file of command options (default: {PROJECT_FILE} here, on top of "
    "$XDG_CONFIG_HOME/auditor/config.yaml).",
)
@click.pass_context
def cli(ctx: click.Context, debug: bool, config_file: Path | None) -> None:
    """auditor: NIST SP 800-190 as code for hosts, Docker daemons and Kubernetes clusters.

    Options come from the command line, then AUDITOR_* variables, then the config file.
    """
    logs.configure(debug)
    if ctx.resilient_parsing:  # shell completion: never fail on a config file
        return
    later = ctx.meta.get(COMMAND_ARGS, [])
    if any(arg == "--config" or arg.startswith("--config=") for arg in later):
        return  # `auditor CMD --config FILE`: that file alone, read by the command's option
    ctx.default_map = default_map(cli, ctx, config_files(config_file))


def print_error(exc: AuditorError) -> None:
    click.echo(f"auditor: error: {exc}", err=True)
    for line in getattr(exc, "more", ()):
        click.echo(f"auditor: error: {line}", err=True)
    if exc.hint:
        click.echo(f"auditor: hint: {exc.hint}", err=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: run the command and map every outcome to an exit status."""
    status = _exit_status(list(sys.argv[1:] if argv is None else argv))
    if argv is None:
        # The process ends here: the interpreter's last cycle collection would walk every
        # object the run made, for nothing (seconds after a large run; 1.2 s per 6 million).
        gc.freeze()
    sys.exit(status)


def _exit_status(args: list[str]) -> int:
    debug = "--debug" in args or bool(os.environ.get("AUDITOR_DEBUG"))
    try:
        status = cli.main(args=args, prog_name="auditor", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.Abort:
        click.echo("auditor: aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return int(ExitStatus.USAGE)
    except AuditorError as exc:
        if debug:
            raise
        print_error(exc)
        return int(exc.exit_status)
    except KeyboardInterrupt:
        click.echo("auditor: interrupted", err=True)
        return 130
    return int(status) if isinstance(status, int) else int(ExitStatus.OK)
