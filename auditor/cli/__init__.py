"""The command line: flags, environment and files -> RunConfig -> engine -> ExitStatus.

Only this package catches broadly: every error becomes one line on stderr and an exit status
(see errors.ExitStatus); `--debug` shows the traceback as well. One module per command group.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Sequence

import click

from auditor import __version__
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
}


class _LazyGroup(click.Group):
    """A click group whose commands live in modules imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, _, attr = target.partition(":")
        command: click.Command = getattr(importlib.import_module(module_name), attr)
        return command


@click.group(
    cls=_LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="auditor")
@click.option(
    "--debug", is_flag=True, envvar="AUDITOR_DEBUG", help="Log details and show tracebacks."
)
def cli(debug: bool) -> None:
    """auditor: NIST SP 800-190 as code for hosts, Docker daemons and Kubernetes clusters."""
    from auditor.redact import RedactingFormatter

    handler = logging.StreamHandler(sys.stderr)  # logs are a sink too: redacted like the rest
    handler.setFormatter(RedactingFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, handlers=[handler])


def print_error(exc: AuditorError) -> None:
    click.echo(f"auditor: error: {exc}", err=True)
    for line in getattr(exc, "more", ()):
        click.echo(f"auditor: error: {line}", err=True)
    if exc.hint:
        click.echo(f"auditor: hint: {exc.hint}", err=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: run the command and map every outcome to an exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or bool(os.environ.get("AUDITOR_DEBUG"))
    try:
        status = cli.main(args=args, prog_name="auditor", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("auditor: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(ExitStatus.USAGE)
    except AuditorError as exc:
        if debug:
            raise
        print_error(exc)
        sys.exit(exc.exit_status)
    except KeyboardInterrupt:
        click.echo("auditor: interrupted", err=True)
        sys.exit(130)
    sys.exit(int(status) if isinstance(status, int) else ExitStatus.OK)
