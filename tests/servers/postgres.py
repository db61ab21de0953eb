"""A real PostgreSQL server (Debian's packages) on 127.0.0.1 with a throwaway cluster.

root may not run the server, so initdb and postgres run as the `postgres` user on a data
directory it owns. Loopback connections are trusted (pg_hba.conf), which is fine for a
server that lives for one test session and listens on 127.0.0.1 and a private socket only.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from servers.process import SETUP_HINT, ServerError, free_port, run, start_process, stop_process

HOST = "127.0.0.1"
OS_USER = "postgres"
DB_USER = "postgres"
DATABASE = "auditor_test"
_PG_HBA = f"local all all trust\nhost all all {HOST}/32 trust\n"


@dataclass(frozen=True)
class PostgresServer:
    """A running PostgreSQL with an empty database `auditor_test`."""

    host: str
    port: int
    user: str
    database: str
    url: str
    """SQLAlchemy URL: postgresql+psycopg://postgres@127.0.0.1:PORT/auditor_test"""
    data_dir: Path
    socket_dir: Path
    log_path: Path
    pid: int


def postgres_bindir() -> Path:
    """Return the bin directory of the newest PostgreSQL installed under /usr/lib/postgresql."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda path: int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0,
    )
    if not candidates:
        raise ServerError(f"no /usr/lib/postgresql/*/bin/postgres: {SETUP_HINT}")
    return candidates[-1].parent


def _accepts(bindir: Path, port: int) -> bool:
    """Tell whether the server accepts connections (pg_isready exits 0)."""
    argv = [str(bindir / "pg_isready"), "-q", "-h", HOST, "-p", str(port), "-t", "2"]
    try:
        return subprocess.run(argv, timeout=5, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


@contextmanager
def postgres_server(workdir: Path, timeout: float = 60.0) -> Iterator[PostgresServer]:
    """Init a cluster in workdir, run postgres on a free port, create DATABASE.

    On exit the server is stopped and its data directory removed; the log stays.
    """
    bindir = postgres_bindir()
    shutil.chown(workdir, OS_USER, OS_USER)
    workdir.chmod(0o700)
    data_dir, socket_dir = workdir / "data", workdir / "socket"
    socket_dir.mkdir(mode=0o700)
    shutil.chown(socket_dir, OS_USER, OS_USER)
    run(
        [
            str(bindir / "initdb"),
            f"--pgdata={data_dir}",
            f"--username={DB_USER}",
            *("--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"),
        ],
        user=OS_USER,
        timeout=120,
    )
    (data_dir / "pg_hba.conf").write_text(_PG_HBA)
    port = free_port()
    log_path = workdir / "postgres.log"
    proc = start_process(
        [
            str(bindir / "postgres"),
            f"-D{data_dir}",
            f"-k{socket_dir}",
            f"-p{port}",
            f"--listen_addresses={HOST}",
            # Durability is pointless for a throwaway cluster; these make it faster.
            *("--fsync=off", "--synchronous_commit=off", "--full_page_writes=off"),
        ],
        what=f"postgres on {HOST}:{port}",
        log_path=log_path,
        ready=lambda: _accepts(bindir, port),
        timeout=timeout,
        user=OS_USER,
    )
    try:
        run(
            [str(bindir / "createdb"), "-h", HOST, "-p", str(port), "-U", DB_USER, DATABASE],
            timeout=30,
        )
        yield PostgresServer(
            host=HOST,
            port=port,
            user=DB_USER,
            database=DATABASE,
            url=f"postgresql+psycopg://{DB_USER}@{HOST}:{port}/{DATABASE}",
            data_dir=data_dir,
            socket_dir=socket_dir,
            log_path=log_path,
            pid=proc.pid,
        )
    finally:
        # SIGINT is PostgreSQL's "fast" shutdown: it does not wait for clients to leave.
        stop_process(proc, signal.SIGINT, timeout=30)
        shutil.rmtree(data_dir)  # the log stays for post-mortems
