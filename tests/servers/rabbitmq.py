"""A real RabbitMQ (Debian's rabbitmq-server) on 127.0.0.1 with a user and password of its own:
a Celery broker of the distributed-run tests. Everything it keeps (Mnesia, logs, the Erlang
cookie) lives in the test's directory; its own epmd (the Erlang port mapper) listens on a free
loopback port and is stopped with it, and the node's distribution port is loopback only."""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from servers.process import (
    SETUP_HINT,
    ServerError,
    free_port,
    require_executable,
    start_process,
    stop_process,
)

HOST = "127.0.0.1"
USER = "auditor"
# The server itself: /usr/sbin/rabbitmq-server is a wrapper that switches to the rabbitmq user.
SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")


@dataclass(frozen=True)
class RabbitServer:
    """A running RabbitMQ; `url` carries its user and password."""

    port: int
    password: str
    pid: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"amqp://{USER}:{self.password}@{HOST}:{self.port}//"


def _listens(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return True
    except OSError:
        return False


def _answers(port: int, password: str) -> bool:
    import amqp  # py-amqp, Celery's own AMQP client

    connection = amqp.Connection(
        f"{HOST}:{port}", userid=USER, password=password, connect_timeout=2
    )
    try:
        connection.connect()
    except (OSError, amqp.exceptions.AMQPError):
        return False
    connection.close()
    return True


def _environment(workdir: Path, port: int, epmd_port: int, password: str) -> list[str]:
    """`env` arguments that keep the node to `workdir` and to loopback."""
    (workdir / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = {HOST}:{port}\n"
        f"default_user = {USER}\ndefault_pass = {password}\n"
        "loopback_users = none\n"
    )
    (workdir / "enabled_plugins").write_text("[].\n")
    return [
        f"HOME={workdir}",  # the Erlang cookie
        f"ERL_EPMD_PORT={epmd_port}",
        f"ERL_EPMD_ADDRESS={HOST}",
        f"RABBITMQ_NODENAME=auditor-test-{port}@localhost",
        f"RABBITMQ_NODE_IP_ADDRESS={HOST}",
        f"RABBITMQ_NODE_PORT={port}",
        f"RABBITMQ_DIST_PORT={free_port()}",
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}",
        f"RABBITMQ_CONFIG_FILE={workdir / 'rabbitmq'}",
        f"RABBITMQ_ENABLED_PLUGINS_FILE={workdir / 'enabled_plugins'}",
        f"RABBITMQ_MNESIA_BASE={workdir / 'mnesia'}",
        f"RABBITMQ_LOG_BASE={workdir / 'log'}",
        f"RABBITMQ_PID_FILE={workdir / 'rabbitmq.pid'}",
        "RABBITMQ_LOGS=-",
    ]


@contextmanager
def rabbitmq_server(workdir: Path) -> Iterator[RabbitServer]:
    """Run epmd and a RabbitMQ node on loopback until the block ends."""
    if not SERVER.exists():
        raise ServerError(f"{SERVER} not found: {SETUP_HINT}")
    env = require_executable("env")
    epmd_port, port = free_port(), free_port()
    password = secrets.token_hex(8)
    epmd = start_process(
        [require_executable("epmd"), "-address", HOST, "-port", str(epmd_port)],
        what="epmd",
        log_path=workdir / "epmd.log",
        ready=lambda: _listens(epmd_port),
    )
    try:
        log_path = workdir / "rabbitmq.log"
        node = start_process(
            [env, *_environment(workdir, port, epmd_port, password), str(SERVER)],
            what="rabbitmq-server",
            log_path=log_path,
            ready=lambda: _answers(port, password),
            timeout=120,
        )
        try:
            yield RabbitServer(port, password, node.pid, log_path)
        finally:
            stop_process(node, timeout=60)
    finally:
        stop_process(epmd)
