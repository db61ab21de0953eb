"""A real OpenSSH server on 127.0.0.1 with generated keys, and the local users it serves.

sshd runs from its own config file in a private directory: an ed25519 host key, one client
key authorised for every test user through `AuthorizedKeysFile <dir>/authorized_keys/%u`
(StrictModes=no because the files live under /tmp), DEBUG1 logging to a file so tests can
count the exec channels a client opened.
"""

from __future__ import annotations

import fcntl
import pwd
import re
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from servers.process import (
    SETUP_HINT,
    ServerError,
    free_port,
    require_executable,
    run,
    start_process,
    stop_process,
)

HOST = "127.0.0.1"
SSHD = "/usr/sbin/sshd"  # sshd re-executes itself and so must be started by absolute path

ROOT_USER = "root"
NOSUDO_USER = "auditor-nosudo"
"""A plain local user without any sudo rights."""
SUDO_USER = "auditor-sudo"
"""A local user with passwordless sudo (`sudo -n` succeeds)."""
PWSUDO_USER = "auditor-pwsudo"
"""A local user whose sudo asks for a password (`sudo -n` is refused)."""
PWSUDO_PASSWORD = "auditor-pwsudo-test-password"
"""The login password of PWSUDO_USER, for tests that feed sudo a password."""
TEST_USERS = (ROOT_USER, NOSUDO_USER, SUDO_USER, PWSUDO_USER)

SUDOERS_PATH = Path("/etc/sudoers.d/auditor-test")
SUDOERS_TEXT = (
    "# Users for auditor's integration tests (tests/servers/sshd.py).\n"
    f"{SUDO_USER} ALL=(ALL:ALL) NOPASSWD: ALL\n"
    f"{PWSUDO_USER} ALL=(ALL:ALL) ALL\n"
)
USERS_LOCK = Path("/run/lock/auditor-test-users.lock")

# OpenSSH 9.2 at LogLevel DEBUG1 logs this line for every channel a client opens, e.g.
#   debug1: server_input_channel_open: ctype session rchan 0 win 2097152 max 32768
# Every exec request rides on a channel of its own of type "session" (as do shells and
# sftp); port forwards are "direct-tcpip" and are not counted. The line is written before
# sshd confirms the channel, so it is in the log by the time the client has the channel.
_EXEC_CHANNEL_LINE = re.compile(r"server_input_channel_open: ctype session ")


@dataclass(frozen=True)
class SshServer:
    """A running sshd and the files a client needs to log in to it with verified host keys."""

    host: str
    port: int
    host_key_path: Path
    host_public_key_line: str
    """The host key as `ssh-ed25519 AAAA... comment`."""
    known_hosts_path: Path
    """known_hosts with the real host key for `[127.0.0.1]:port`."""
    wrong_known_hosts_path: Path
    """known_hosts with a different key for the same `[127.0.0.1]:port`."""
    client_key_path: Path
    """Private ed25519 key (OpenSSH format, no passphrase) authorised for TEST_USERS."""
    log_path: Path
    pid: int

    def auditor_args(self, user: str = ROOT_USER) -> list[str]:
        """`auditor run` flags that audit this server as `user`, trusting only its key."""
        return [
            "--target", f"ssh://{user}@{self.host}:{self.port}",
            "--known-hosts", str(self.known_hosts_path),
            "--identity", str(self.client_key_path),
            "--ssh-config", "/dev/null",
        ]  # fmt: skip

    def count_exec_channels(self) -> int:
        """Count the session channels (one per exec request) opened so far, from the log."""
        with self.log_path.open(errors="replace") as log:
            return sum(1 for line in log if _EXEC_CHANNEL_LINE.search(line))


@dataclass(frozen=True)
class TcpEndpoint:
    """A host and port to connect to."""

    host: str
    port: int


def ensure_test_users() -> None:
    """Create the test users and their sudoers rules if missing; safe across processes."""
    USERS_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with USERS_LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for user in (NOSUDO_USER, SUDO_USER, PWSUDO_USER):
            try:
                pwd.getpwnam(user)
            except KeyError:
                # "*" is no valid password but, unlike useradd's "!", does not lock the
                # account, so sshd (UsePAM no) still accepts the user's key.
                run(["useradd", "--create-home", "--shell", "/bin/sh", "--password", "*", user])
                if user == PWSUDO_USER:
                    run(["chpasswd"], input_text=f"{user}:{PWSUDO_PASSWORD}\n")
        _install_sudoers()


def _install_sudoers() -> None:
    """Write SUDOERS_PATH (mode 0440) after `visudo -cf` accepted it."""
    if SUDOERS_PATH.exists() and SUDOERS_PATH.read_text() == SUDOERS_TEXT:
        return
    staged = SUDOERS_PATH.with_name(".auditor-test.new")  # sudo skips names with a dot
    staged.write_text(SUDOERS_TEXT)
    staged.chmod(0o440)
    try:
        run([require_executable("visudo"), "-cf", str(staged)])
        staged.replace(SUDOERS_PATH)
    finally:
        staged.unlink(missing_ok=True)


def _keygen(path: Path, comment: str) -> str:
    """Generate an ed25519 key pair at path; return the public key line."""
    argv = [require_executable("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", comment]
    run([*argv, "-f", str(path)])
    return path.with_name(path.name + ".pub").read_text().strip()


@contextmanager
def sshd_server(
    workdir: Path, timeout: float = 30.0, extra_config: Sequence[str] = ()
) -> Iterator[SshServer]:
    """Run sshd on a free port of 127.0.0.1 with keys in workdir; stop it on exit.
    `extra_config` lines go at the end of its sshd_config (a ForceCommand for fault tests)."""
    ensure_test_users()
    if not Path(SSHD).is_file():
        raise ServerError(f"{SSHD} not found: {SETUP_HINT}")
    # Test users read their authorized_keys as themselves: let them through workdir.
    workdir.chmod(0o711)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
    port = free_port()
    host_key = workdir / "ssh_host_ed25519_key"
    host_line = _keygen(host_key, "auditor-test-host")
    client_key = workdir / "client_ed25519"
    client_line = _keygen(client_key, "auditor-test-client")
    other_line = _keygen(workdir / "other_host_ed25519_key", "auditor-test-other-host")
    keys_dir = workdir / "authorized_keys"
    keys_dir.mkdir(mode=0o755)
    for user in TEST_USERS:
        (keys_dir / user).write_text(client_line + "\n")
        (keys_dir / user).chmod(0o644)
    known_hosts = workdir / "known_hosts"
    known_hosts.write_text(f"[{HOST}]:{port} {_key_part(host_line)}\n")
    wrong_known_hosts = workdir / "known_hosts.wrong"
    wrong_known_hosts.write_text(f"[{HOST}]:{port} {_key_part(other_line)}\n")
    config = workdir / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                f"ListenAddress {HOST}",
                f"HostKey {host_key}",
                f"AuthorizedKeysFile {keys_dir}/%u",
                "StrictModes no",
                f"PidFile {workdir}/sshd.pid",
                "LogLevel DEBUG1",
                "UsePAM no",
                "PermitRootLogin prohibit-password",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "Subsystem sftp internal-sftp",
                # one sshd stands in for a whole fleet (perf: 50 aliases, 25 at once); the
                # default 10:30:100 would drop a third of the concurrent handshakes
                "MaxStartups 100:30:200",
                *extra_config,
                "",
            ]
        )
    )
    log_path = workdir / "sshd.log"
    proc = start_process(
        [SSHD, "-D", "-e", "-f", str(config), "-E", str(log_path)],
        what=f"sshd on {HOST}:{port}",
        log_path=log_path,
        ready=lambda: f"Server listening on {HOST} port {port}" in log_path.read_text(),
        timeout=timeout,
    )
    try:
        yield SshServer(
            host=HOST,
            port=port,
            host_key_path=host_key,
            host_public_key_line=host_line,
            known_hosts_path=known_hosts,
            wrong_known_hosts_path=wrong_known_hosts,
            client_key_path=client_key,
            log_path=log_path,
            pid=proc.pid,
        )
    finally:
        stop_process(proc)


def _key_part(public_key_line: str) -> str:
    """Return `type base64` from a `type base64 comment` public key line."""
    key_type, blob = public_key_line.split()[:2]
    return f"{key_type} {blob}"


@contextmanager
def stalling_server() -> Iterator[TcpEndpoint]:
    """Listen on 127.0.0.1 without ever accepting: connections open, no banner ever comes.

    The kernel completes the TCP handshake for queued connections, so a client connects
    and then waits for an SSH (or HTTP) greeting until its own timeout fires.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        sock.listen(128)
        yield TcpEndpoint(HOST, sock.getsockname()[1])


@contextmanager
def closed_port() -> Iterator[int]:
    """Hold a 127.0.0.1 port bound but not listening: connections to it are refused.

    Keeping it bound stops anything else from taking the port while the test runs.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        yield sock.getsockname()[1]


@contextmanager
def trickling_proxy(target: TcpEndpoint, stall: float) -> Iterator[TcpEndpoint]:
    """A TCP proxy on 127.0.0.1 to `target` that passes on the first byte of the server's
    greeting at once and the rest `stall` seconds later: an SSH server slow to finish its
    banner (an overloaded host, a slow middlebox). A client's first read succeeds, its
    handshake times out."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((HOST, 0))
    listener.listen(16)
    connections: list[socket.socket] = []

    def pump(source: socket.socket, sink: socket.socket, hold: float) -> None:
        try:
            first = source.recv(1)
            sink.sendall(first)
            time.sleep(hold)
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                end.close()

    def serve() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection((target.host, target.port), timeout=10)
            server.settimeout(None)
            connections.extend((client, server))
            threading.Thread(target=pump, args=(server, client, stall), daemon=True).start()
            threading.Thread(target=pump, args=(client, server, 0), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield TcpEndpoint(HOST, listener.getsockname()[1])
    finally:
        listener.close()
        for connection in connections:
            connection.close()
