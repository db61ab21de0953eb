"""Shared fixtures: real servers (sshd, dockerd, PostgreSQL) started for the test session.

Each fixture is session-scoped per process: under pytest-xdist every worker starts its own
servers on its own free ports and in its own directories, so nothing is shared between
workers and no locking is needed (the system-wide test users are created under a file
lock). A server that cannot start makes the fixture error with its log tail; nothing is
skipped.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings
from servers import dockerd, postgres, sshd

from auditor.cli import main

# Property tests draw the same examples on every run, as the fuzz test replays a fixed seed:
# a red CI is a regression, not a lucky draw. HYPOTHESIS_PROFILE=explore draws anew.
settings.register_profile("suite", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))


def _scratch(variable: str, prefix: str, *, replace: bool = False) -> None:
    """Point `variable` at a new directory that goes when this test process ends (each
    xdist worker has its own), unless the caller set it and `replace` is false."""
    if variable in os.environ and not replace:
        return
    os.environ[variable] = path = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, path, ignore_errors=True)


# Keep the tests' redaction fingerprints, data and cache files out of the user's home directory.
os.environ.setdefault("AUDITOR_FINGERPRINT_KEY", "auditor-test-suite")
_scratch("XDG_DATA_HOME", "auditor-xdg-")
_scratch("XDG_CACHE_HOME", "auditor-cache-")
# ... and the user's own config file and trusted bundle keys (a test that wants one writes
# its own).
_scratch("XDG_CONFIG_HOME", "auditor-config-", replace=True)


@pytest.fixture(scope="session")
def servers_dir() -> Iterator[Path]:
    """A short-named directory under /tmp for the servers' state, removed after the session.

    Not pytest's tmp_path: that lives under a 0700 directory the test users and the
    postgres user cannot enter, and unix socket paths must stay under 108 bytes.
    """
    path = Path(tempfile.mkdtemp(prefix="auditor-test-", dir="/tmp"))
    path.chmod(0o711)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def _subdir(parent: Path, name: str) -> Path:
    """Create parent/name and return it."""
    path = parent / name
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def sshd_server(servers_dir: Path) -> Iterator[sshd.SshServer]:
    """A real sshd on 127.0.0.1 accepting the generated client key for the test users."""
    with sshd.sshd_server(_subdir(servers_dir, "sshd")) as server:
        yield server


@pytest.fixture
def stalling_server() -> Iterator[sshd.TcpEndpoint]:
    """A TCP endpoint on 127.0.0.1 that takes connections and never sends a byte."""
    with sshd.stalling_server() as endpoint:
        yield endpoint


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 where connections are refused."""
    with sshd.closed_port() as port:
        yield port


@pytest.fixture(scope="session")
def dockerd_server(servers_dir: Path) -> Iterator[dockerd.DockerDaemon]:
    """A real dockerd on a private unix socket with its own data root."""
    with dockerd.dockerd_server(_subdir(servers_dir, "dockerd")) as daemon:
        yield daemon


@pytest.fixture(scope="module")
def own_dockerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dockerd.DockerDaemon]:
    """A dockerd of the test module's own, for tests whose large images (Debian hosts, the
    project's image) must not reach the shared daemon, whose audits expect its scenario's
    images only. Its state goes when the module's tests are done."""
    with dockerd.dockerd_server(tmp_path_factory.mktemp("own-dockerd")) as daemon:
        yield daemon


@pytest.fixture(scope="session")
def postgres_server(servers_dir: Path) -> Iterator[postgres.PostgresServer]:
    """A real PostgreSQL on 127.0.0.1 with an empty database `auditor_test`."""
    with postgres.postgres_server(_subdir(servers_dir, "postgres")) as server:
        yield server


@dataclass(frozen=True)
class CliResult:
    """What one in-process `auditor ...` invocation gave: exit code and captured output."""

    code: int
    out: str
    err: str


@pytest.fixture
def auditor_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run the CLI in this process (fast, debuggable) and return its exit code and output."""

    def invoke(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        else:
            code = 0
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke
