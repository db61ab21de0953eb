"""A real Redis server (Debian's redis-server) on 127.0.0.1 with a password: the Celery broker
and result backend of the distributed-run tests, in plain text or TLS only (a test CA; the
client verifies the server's certificate). Nothing is saved to disk."""

from __future__ import annotations

import secrets
import socket
import ssl
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from servers.certs import server_certificates
from servers.process import free_port, require_executable, start_process, stop_process

HOST = "127.0.0.1"


@dataclass(frozen=True)
class RedisServer:
    """A running redis-server; `url` carries its password (redis://:PASSWORD@host:port/0, or
    rediss://... with the CA to verify the server by when `ca_path` is set)."""

    port: int
    password: str
    pid: int
    log_path: Path
    ca_path: Path | None = None

    @property
    def url(self) -> str:
        if self.ca_path is None:
            return f"redis://:{self.password}@{HOST}:{self.port}/0"
        ca = quote(str(self.ca_path), safe="")
        return (
            f"rediss://:{self.password}@{HOST}:{self.port}/0"
            f"?ssl_cert_reqs=required&ssl_ca_certs={ca}"
        )


def _answers(port: int, password: str, ca_path: Path | None) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1) as raw:
            sock = raw
            if ca_path is not None:
                context = ssl.create_default_context(cafile=ca_path)
                sock = context.wrap_socket(raw, server_hostname=HOST)
            sock.sendall(f"AUTH {password}\r\nPING\r\n".encode())
            return b"PONG" in sock.recv(64)
    except OSError:
        return False


def _tls_args(workdir: Path, port: int) -> tuple[list[str], Path]:
    """redis-server flags that serve TLS only on `port`, and the test CA's file."""
    ca_pem, cert_pem, key_pem = server_certificates("redis", HOST)
    paths = {name: workdir / name for name in ("ca.pem", "redis.pem", "redis.key")}
    for name, data in zip(paths, (ca_pem, cert_pem, key_pem), strict=True):
        paths[name].write_bytes(data)
    args = [
        "--port", "0", "--tls-port", str(port), "--tls-auth-clients", "no",
        "--tls-cert-file", str(paths["redis.pem"]), "--tls-key-file", str(paths["redis.key"]),
        "--tls-ca-cert-file", str(paths["ca.pem"]),
    ]  # fmt: skip
    return args, paths["ca.pem"]


@contextmanager
def redis_server(
    workdir: Path, port: int | None = None, *, tls: bool = False, options: Sequence[str] = ()
) -> Iterator[RedisServer]:
    """Run redis-server on loopback until the block ends; `port` to restart on the same one;
    `tls` to serve TLS only; `options`: more redis-server flags."""
    port = port or free_port()
    password = secrets.token_hex(8)
    log_path = workdir / "redis.log"
    argv = [
        require_executable("redis-server"),
        "--bind", HOST, "--port", str(port), "--requirepass", password,
        "--save", "", "--appendonly", "no", "--dir", str(workdir),
    ]  # fmt: skip
    argv += options
    ca_path = None
    if tls:
        tls_args, ca_path = _tls_args(workdir, port)
        argv += tls_args
    proc = start_process(
        argv,
        what="redis-server",
        log_path=log_path,
        ready=lambda: _answers(port, password, ca_path),
    )
    try:
        yield RedisServer(port, password, proc.pid, log_path, ca_path)
    finally:
        stop_process(proc)
