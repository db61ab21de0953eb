"""What every target is: a context manager that connects lazily and always closes."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from types import TracebackType
from typing import ClassVar, Self

from auditor.config import TargetSpec
from auditor.model import TargetKind


@dataclass(frozen=True)
class CommandResult:
    """What one command on a host gave back."""

    command: str
    exit_status: int
    stdout: str
    stderr: str
    duration: float
    cut_at: int | None = None
    """Set when the output passed the target's cap (TargetSpec.max_output): the cap, in
    bytes. The script was stopped there; what it printed up to the cap is kept."""


class BoundedOutput:
    """A script's stdout and stderr as they arrive, kept up to `limit` bytes together: a host
    that prints without end costs the cap, not the machine's memory."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.full = False  # the limit was reached: what came after it was dropped

    def add(self, data: bytes, *, stderr: bool = False) -> None:
        room = self.limit - len(self.stdout) - len(self.stderr)
        (self.stderr if stderr else self.stdout).extend(data[:room] if len(data) > room else data)
        self.full = len(data) >= room

    def result(self, command: str, exit_status: int, duration: float) -> CommandResult:
        """The CommandResult of what was kept (its buffers are emptied)."""
        cut_at = self.limit if self.full else None
        stdout = self.stdout.decode("utf-8", "replace")
        stderr = self.stderr.decode("utf-8", "replace")
        self.stdout, self.stderr = bytearray(), bytearray()
        return CommandResult(command, exit_status, stdout, stderr, duration, cut_at=cut_at)


class Target(abc.ABC):
    """Something auditor audits. Use it as a context manager: it connects on entry (with a
    timeout) and closes on exit, whatever happened in between."""

    kind: ClassVar[TargetKind]

    def __init__(self, spec: TargetSpec) -> None:
        self.spec = spec

    @property
    def name(self) -> str:
        return self.spec.display_name

    @abc.abstractmethod
    def connect(self) -> None:
        """Open the connection; TargetError with a one-line reason when that fails."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release everything connect() opened; safe to call twice."""

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class HostTarget(Target):
    """A Linux host: it runs one read-only shell script and hands back what it printed."""

    kind = TargetKind.HOST

    @abc.abstractmethod
    def run_script(self, script: str, timeout: float) -> CommandResult:
        """Run `script` with /bin/sh (through `sudo -n` when the spec asks for it) in ONE
        process / exec channel; TargetError when it cannot run or exceeds `timeout`. Output past
        `spec.max_output` bytes stops the script (CommandResult.cut_at). A script given up on
        is stopped: its process group is signalled."""

    def shell_command(self, as_root: bool) -> list[str]:
        """argv that reads the script on stdin; `sudo -n` never prompts, it fails instead."""
        if self.spec.sudo and not as_root:
            return ["sudo", "-n", "--", "/bin/sh", "-s"]
        return ["/bin/sh", "-s"]


SUDO_REFUSED_HINT = (
    "give the user passwordless sudo for /bin/sh, or audit without --sudo "
    "(root-only facts then become errors)"
)
