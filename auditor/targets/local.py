"""local://: the machine auditor runs on, through a subprocess."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time

from auditor.errors import TargetError
from auditor.targets.base import BoundedOutput, CommandResult, HostTarget

STOP_GRACE = 1.0  # seconds the script has to end after SIGTERM, before SIGKILL


class LocalTarget(HostTarget):
    """The local host. Nothing to connect to; the script runs in one /bin/sh subprocess."""

    def connect(self) -> None:
        return None

    def close(self) -> None:
        return None

    def run_script(self, script: str, timeout: float) -> CommandResult:
        argv = self.shell_command(as_root=os.geteuid() == 0)
        started = time.monotonic()
        output = BoundedOutput(self.spec.max_output)
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"},
                start_new_session=True,  # a process group of its own, to stop as a whole
            )
        except OSError as exc:
            raise TargetError(f"cannot start {argv[0]}: {exc.strerror}") from exc
        ended = False
        try:
            _exchange(process, script.encode(), output, started + timeout)
            ended = not output.full
        except TimeoutError as exc:
            raise TargetError(f"host script did not finish within {timeout:g}s (stopped)") from exc
        finally:
            if not ended:  # also what it left running in the background
                _stop(process)
            for pipe in (process.stdin, process.stdout, process.stderr):
                if pipe is not None:
                    pipe.close()
        status = -1 if output.full else process.wait()
        return output.result(" ".join(argv), status, time.monotonic() - started)


def _exchange(
    process: subprocess.Popen[bytes], script: bytes, output: BoundedOutput, deadline: float
) -> None:
    """Write the script to the process and read its output until both pipes end, the output
    is full or the deadline passes (TimeoutError)."""
    assert process.stdin and process.stdout and process.stderr
    with selectors.DefaultSelector() as selector:
        os.set_blocking(process.stdin.fileno(), False)
        selector.register(process.stdin, selectors.EVENT_WRITE)
        selector.register(process.stdout, selectors.EVENT_READ)
        selector.register(process.stderr, selectors.EVENT_READ)
        reading = 2
        while reading and not output.full:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            for key, _ in selector.select(remaining):
                if key.fileobj is process.stdin:
                    try:
                        script = script[os.write(key.fd, script[:65536]) :]
                    except BrokenPipeError:  # the shell stopped reading (it exited)
                        script = b""
                    if not script:
                        selector.unregister(process.stdin)
                        process.stdin.close()
                    continue
                data = os.read(key.fd, 65536)
                if not data:
                    selector.unregister(key.fileobj)
                    reading -= 1
                else:
                    output.add(data, stderr=key.fileobj is process.stderr)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the script's process group (sudo passes it on), then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        try:
            process.wait(STOP_GRACE)
            break
        except subprocess.TimeoutExpired:
            continue
    process.wait()
