"""Process plumbing shared by the server helpers: start, wait until ready, stop, run."""

from __future__ import annotations

import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

SETUP_HINT = "run `bash scripts/setup-test-env.sh` as root to install the test servers"


class ServerError(RuntimeError):
    """A test server could not be set up, started or reached."""


def require_executable(name: str) -> str:
    """Return the full path of executable `name`, or raise ServerError naming the fix."""
    path = shutil.which(name, path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    if path is None:
        raise ServerError(f"`{name}` not found: {SETUP_HINT}")
    return path


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def log_tail(path: Path, lines: int = 40) -> str:
    """Return the last `lines` lines of a log file (or a note that there is none)."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log at {path}: {exc.strerror})"
    return "\n".join(text.splitlines()[-lines:]) or f"(log {path} is empty)"


def run(
    argv: Sequence[str],
    *,
    timeout: float = 60.0,
    user: str | None = None,
    input_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run argv to completion; raise ServerError with its stderr when it fails or hangs."""
    command = shlex.join(argv)
    try:
        result = subprocess.run(
            list(argv),
            input=input_text,
            stdin=None if input_text is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            user=user,
            group=user,
            extra_groups=[] if user else None,
            cwd="/",
        )
    except FileNotFoundError as exc:
        raise ServerError(f"`{command}`: {exc.strerror}: {SETUP_HINT}") from exc
    except subprocess.TimeoutExpired as exc:
        raise ServerError(f"`{command}` did not finish within {timeout:g}s") from exc
    if result.returncode != 0:
        output = (result.stderr.strip() or result.stdout.strip())[-2000:]
        raise ServerError(f"`{command}` exited with status {result.returncode}: {output}")
    return result


def start_process(
    argv: Sequence[str],
    *,
    what: str,
    log_path: Path,
    ready: Callable[[], bool],
    timeout: float = 60.0,
    user: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start a server with its output appended to log_path; return once ready() is true.

    If the server exits early or is not ready in time it is stopped and ServerError
    carries the tail of its log.
    """
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            user=user,
            group=user,
            extra_groups=[] if user else None,
            cwd="/",
        )
    try:
        _wait_until_ready(proc, what=what, log_path=log_path, ready=ready, timeout=timeout)
    except BaseException:
        stop_process(proc)
        raise
    return proc


def _wait_until_ready(
    proc: subprocess.Popen[bytes],
    *,
    what: str,
    log_path: Path,
    ready: Callable[[], bool],
    timeout: float,
) -> None:
    """Poll ready() until it is true; raise ServerError if proc exits or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        status = proc.poll()
        if status is not None:
            raise ServerError(
                f"{what} (pid {proc.pid}) exited with status {status} before it was ready; "
                f"log {log_path}:\n{log_tail(log_path)}"
            )
        if ready():
            return
        if time.monotonic() > deadline:
            raise ServerError(
                f"{what} (pid {proc.pid}) not ready after {timeout:g}s; "
                f"log {log_path}:\n{log_tail(log_path)}"
            )
        time.sleep(0.05)


def stop_process(
    proc: subprocess.Popen[bytes], sig: signal.Signals = signal.SIGTERM, timeout: float = 30.0
) -> None:
    """Send sig to proc and reap it; SIGKILL it if it is still there after timeout seconds."""
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
