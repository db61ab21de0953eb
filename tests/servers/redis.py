"""A real Redis server (Debian's redis-server) on 127.0.0.1 with a password: the Celery broker
and result backend of the distributed-run tests. Nothing is saved to disk."""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from servers.process import free_port, require_executable, start_process, stop_process


@dataclass(frozen=True)
class RedisServer:
    """A running redis-server; `url` carries its password (redis://:PASSWORD@host:port/0)."""

    port: int
    password: str
    pid: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"


def _answers(port: int, password: str) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(f"AUTH {password}\r\nPING\r\n".encode())
            return b"PONG" in sock.recv(64)
    except OSError:
        return False


@contextmanager
def redis_server(workdir: Path, port: int | None = None) -> Iterator[RedisServer]:
    """Run redis-server on loopback until the block ends; `port` to restart on the same one."""
    port = port or free_port()
    password = secrets.token_hex(8)
    log_path = workdir / "redis.log"
    argv = [
        require_executable("redis-server"),
        "--bind", "127.0.0.1", "--port", str(port), "--requirepass", password,
        "--save", "", "--appendonly", "no", "--dir", str(workdir),
    ]  # fmt: skip
    proc = start_process(
        argv, what="redis-server", log_path=log_path, ready=lambda: _answers(port, password)
    )
    try:
        yield RedisServer(port=port, password=password, pid=proc.pid, log_path=log_path)
    finally:
        stop_process(proc)
