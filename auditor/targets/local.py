"""local://: the machine auditor runs on, through a subprocess."""

from __future__ import annotations

import os
import subprocess
import time

from auditor.errors import TargetError
from auditor.targets.base import CommandResult, HostTarget


class LocalTarget(HostTarget):
    """The local host. Nothing to connect to; the script runs in one /bin/sh subprocess."""

    def connect(self) -> None:
        return None

    def close(self) -> None:
        return None

    def run_script(self, script: str, timeout: float) -> CommandResult:
        argv = self.shell_command(as_root=os.geteuid() == 0)
        started = time.monotonic()
        try:
            completed = subprocess.run(
                argv,
                input=script.encode(),
                capture_output=True,
                timeout=timeout,
                check=False,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"},
            )
        except subprocess.TimeoutExpired as exc:
            raise TargetError(f"host script did not finish within {timeout:g}s") from exc
        except OSError as exc:
            raise TargetError(f"cannot start {argv[0]}: {exc.strerror}") from exc
        return CommandResult(
            command=" ".join(argv),
            exit_status=completed.returncode,
            stdout=completed.stdout.decode("utf-8", "replace"),
            stderr=completed.stderr.decode("utf-8", "replace"),
            duration=time.monotonic() - started,
        )
