"""The one exception tree of auditor and the process exit statuses it maps to.

Library exceptions (paramiko, docker, kubernetes, yaml, pydantic) are re-raised as these with
`from exc` at the boundary where they happen; only cli.py turns them into an ExitStatus.
"""

from __future__ import annotations

import enum
from pathlib import Path


class ExitStatus(enum.IntEnum):
    """Process exit codes; documented in the README."""

    OK = 0  # ran, and every gate was met
    GATE_FAILED = 1  # --fail-under / --fail-on / --min-coverage not met
    USAGE = 2  # bad flags or bad input (profile, inventory, waiver, bundle, target URL)
    NO_TARGET = 3  # no target could be audited at all


class AuditorError(Exception):
    """Root of every error auditor raises on purpose; `hint` tells the operator what to do."""

    exit_status = ExitStatus.USAGE
    hint = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint


class InputError(AuditorError):
    """Bad input in a file: names the file, the line and the item. `more` holds further
    problems found in the same pass, one line each, so one run shows them all."""

    more: tuple[str, ...] = ()

    def __init__(
        self,
        message: str,
        *,
        path: Path | str | None = None,
        line: int | None = None,
        item: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.reason = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.item = item
        where = ""
        if self.path:
            where = self.path + (f":{line}" if line else "") + ": "
        what = f"{item}: " if item else ""
        super().__init__(f"{where}{what}{message}", hint=hint)


class ProfileError(InputError):
    """A benchmark profile or overlay is malformed."""

    hint = "run `auditor profiles validate FILE` to see every problem"


class InventoryError(InputError):
    """An inventory file or a target URL is malformed."""


class TargetError(AuditorError):
    """A target could not be reached or refused us (connection, auth, host key, sudo, TLS)."""

    exit_status = ExitStatus.NO_TARGET


class CollectionError(AuditorError):
    """A fact could not be collected from a target that was otherwise reachable."""

    exit_status = ExitStatus.NO_TARGET


class ReportError(AuditorError):
    """A report could not be written."""
