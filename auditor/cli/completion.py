"""`auditor completion SHELL`: the shell's completion script, from click's own completion."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

SHELLS = ("bash", "zsh", "fish")


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the completion script for SHELL.

    \b
    bash: eval "$(auditor completion bash)"   (in ~/.bashrc)
    zsh:  eval "$(auditor completion zsh)"    (in ~/.zshrc)
    fish: auditor completion fish > ~/.config/fish/completions/auditor.fish
    """
    from auditor.cli import cli

    completer = get_completion_class(shell)
    assert completer is not None  # every name in SHELLS is one of click's
    click.echo(completer(cli, {}, "auditor", "_AUDITOR_COMPLETE").source())
