"""The server fixtures really work: sshd, dockerd and PostgreSQL answer as the tests expect."""

from __future__ import annotations

from collections.abc import Iterator

import docker
import paramiko
import pytest
import sqlalchemy
from servers.dockerd import DockerDaemon, busybox_image
from servers.postgres import PostgresServer
from servers.sshd import NOSUDO_USER, PWSUDO_USER, ROOT_USER, SUDO_USER, SshServer, TcpEndpoint

pytestmark = pytest.mark.integration


def _connect(server: SshServer, user: str, known_hosts: str | None = None) -> paramiko.SSHClient:
    """Log in as user with the client key, verifying the host key against known_hosts."""
    client = paramiko.SSHClient()
    client.load_host_keys(known_hosts or str(server.known_hosts_path))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            server.host,
            port=server.port,
            username=user,
            key_filename=str(server.client_key_path),
            look_for_keys=False,
            allow_agent=False,
            timeout=10,
            banner_timeout=10,
            auth_timeout=10,
        )
    except BaseException:
        client.close()
        raise
    return client


def _exec(client: paramiko.SSHClient, command: str) -> tuple[int, str]:
    """Run command on one exec channel; return its exit status and stdout."""
    _, stdout, _ = client.exec_command(command, timeout=30)
    output = stdout.read().decode()
    return stdout.channel.recv_exit_status(), output


@pytest.fixture
def ssh_as(sshd_server: SshServer) -> Iterator[dict[str, paramiko.SSHClient]]:
    """One logged-in client per test user, closed after the test."""
    clients: dict[str, paramiko.SSHClient] = {}
    try:
        for user in (ROOT_USER, NOSUDO_USER, SUDO_USER, PWSUDO_USER):
            clients[user] = _connect(sshd_server, user)
        yield clients
    finally:
        for client in clients.values():
            client.close()


@pytest.mark.parametrize(("user", "uid_is_root"), [(ROOT_USER, True), (NOSUDO_USER, False)])
def test_ssh_login_with_verified_host_key(
    ssh_as: dict[str, paramiko.SSHClient], user: str, uid_is_root: bool
) -> None:
    status, output = _exec(ssh_as[user], "id -u")
    assert status == 0
    assert (output.strip() == "0") is uid_is_root


@pytest.mark.parametrize(
    ("user", "allowed"), [(SUDO_USER, True), (PWSUDO_USER, False), (NOSUDO_USER, False)]
)
def test_sudo_without_password(
    ssh_as: dict[str, paramiko.SSHClient], user: str, allowed: bool
) -> None:
    status, _ = _exec(ssh_as[user], "sudo -n true")
    assert (status == 0) is allowed


def test_wrong_known_hosts_is_rejected(sshd_server: SshServer) -> None:
    with pytest.raises(paramiko.BadHostKeyException):
        _connect(sshd_server, ROOT_USER, str(sshd_server.wrong_known_hosts_path)).close()


def test_exec_channels_are_counted_one_per_exec(sshd_server: SshServer) -> None:
    client = _connect(sshd_server, ROOT_USER)
    try:
        counts = [sshd_server.count_exec_channels()]
        for _ in range(3):
            _exec(client, "true")
            counts.append(sshd_server.count_exec_channels())
    finally:
        client.close()
    assert counts == [counts[0] + n for n in range(4)]


def test_stalling_server_sends_no_banner(stalling_server: TcpEndpoint) -> None:
    client = paramiko.SSHClient()
    with pytest.raises(paramiko.SSHException, match="banner"):
        client.connect(stalling_server.host, port=stalling_server.port, timeout=5, banner_timeout=1)
    client.close()


def test_closed_port_refuses(closed_port: int) -> None:
    client = paramiko.SSHClient()
    with pytest.raises(paramiko.ssh_exception.NoValidConnectionsError):
        client.connect("127.0.0.1", port=closed_port, timeout=5)


def test_dockerd_runs_the_busybox_image(dockerd_server: DockerDaemon) -> None:
    client = docker.DockerClient(base_url=dockerd_server.base_url, timeout=10)
    try:
        assert client.ping()
        tag = busybox_image(client)
        assert busybox_image(dockerd_server.base_url) == tag  # cached by the daemon
        output = client.containers.run(tag, ["id", "-u"], remove=True)
    finally:
        client.close()
    assert output == b"0\n"


def test_postgres_answers_select_1(postgres_server: PostgresServer) -> None:
    engine = sqlalchemy.create_engine(postgres_server.url, connect_args={"connect_timeout": 10})
    try:
        with engine.connect() as connection:
            assert connection.execute(sqlalchemy.text("select 1")).scalar_one() == 1
    finally:
        engine.dispose()
