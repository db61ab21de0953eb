"""A real evidence bundle of this machine, for tests that score bundles offline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def auditor(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run `python -m auditor ARGS` in a child process; its output is returned, not checked."""
    return subprocess.run(
        [sys.executable, "-m", "auditor", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ},
    )


def collect_local_bundle(directory: Path, *args: str) -> Path:
    """`auditor collect` of local:// into directory/local.tar.gz (extra args passed on)."""
    path = directory / "local.tar.gz"
    result = auditor("collect", "--quiet", "--target", "local://", "-o", str(path), *args,
                     cwd=directory)  # fmt: skip
    if result.returncode != 0:
        raise AssertionError(f"auditor collect failed ({result.returncode}): {result.stderr}")
    return path
