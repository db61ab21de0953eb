"""ssh://[user@]host[:port]: a Linux host over SSH with paramiko.

Trust on purpose: host keys are checked against known_hosts and an unknown or changed key is
an error for the target, unless the user opted in with --accept-new-host-keys (trust on first
use; a *changed* key is refused even then). ~/.ssh/config is honoured for HostName, User,
Port, IdentityFile, UserKnownHostsFile and ProxyJump. The whole audit is one exec channel
(and a second, only to stop a script given up on). known_hosts markers are honoured
(`@revoked`) or skipped with a warning (`@cert-authority`).
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import re
import secrets
import select
import shlex
import socket
import time
from pathlib import Path
from typing import Any

from auditor.config import TargetSpec
from auditor.errors import TargetError
from auditor.importfixes import defer_invoke
from auditor.targets.base import SUDO_REFUSED_HINT, BoundedOutput, CommandResult, HostTarget

defer_invoke()
import paramiko  # noqa: E402 - after defer_invoke, on purpose

log = logging.getLogger(__name__)

DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
DEFAULT_SSH_CONFIG = "~/.ssh/config"


class _AcceptNew(paramiko.MissingHostKeyPolicy):
    """--accept-new-host-keys: trust an unknown key and record it, like OpenSSH's
    StrictHostKeyChecking=accept-new. Changed keys never reach a policy: paramiko refuses them."""

    def __init__(self, known_hosts: Path) -> None:
        self.known_hosts = known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: Any) -> None:
        client.get_host_keys().add(hostname, key.get_name(), key)
        self.known_hosts.parent.mkdir(parents=True, exist_ok=True)
        with self.known_hosts.open("a", encoding="ascii") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # concurrent targets append whole lines
            handle.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")


class SshTarget(HostTarget):
    """A host reached over SSH."""

    def __init__(self, spec: TargetSpec) -> None:
        super().__init__(spec)
        self._clients: list[paramiko.SSHClient] = []
        self._settings = _resolve(spec)

    @property
    def address(self) -> str:
        return f"{self._settings['hostname']}:{self._settings['port']}"

    def connect(self) -> None:
        settings = self._settings
        sock = None
        if settings["proxyjump"]:
            sock = self._jump(settings["proxyjump"])
        self._clients.append(self._open(settings, sock))

    def _jump(self, proxyjump: str) -> paramiko.Channel:
        """A tunnel through the (first) ProxyJump host, verified like any other host."""
        jump_url = "ssh://" + proxyjump.split(",")[0].strip()
        jump_spec = TargetSpec(
            url=jump_url,
            known_hosts=self.spec.known_hosts,
            accept_new_host_keys=self.spec.accept_new_host_keys,
            ssh_config=self.spec.ssh_config,
            identity_files=self.spec.identity_files,
            connect_timeout=self.spec.connect_timeout,
        )
        jump_settings = _resolve(jump_spec)
        jump_settings["proxyjump"] = None
        client = self._open(jump_settings, None)
        self._clients.append(client)
        transport = client.get_transport()
        assert transport is not None
        try:
            return transport.open_channel(
                "direct-tcpip",
                (self._settings["hostname"], self._settings["port"]),
                ("127.0.0.1", 0),
                timeout=self.spec.connect_timeout,
            )
        except (paramiko.SSHException, OSError) as exc:
            raise TargetError(f"ProxyJump {proxyjump} cannot reach {self.address}: {exc}") from exc

    def _open(self, settings: dict[str, Any], sock: Any) -> paramiko.SSHClient:
        if sock is None:
            sock = _dial(settings["hostname"], settings["port"], self.spec.connect_timeout)
        client = paramiko.SSHClient()
        known_hosts = Path(settings["known_hosts"]).expanduser()
        revoked = _load_known_hosts(client.get_host_keys(), known_hosts)
        fallback: paramiko.MissingHostKeyPolicy = (
            _AcceptNew(known_hosts) if self.spec.accept_new_host_keys else paramiko.RejectPolicy()
        )
        client.set_missing_host_key_policy(_RefuseRevoked(revoked, fallback, known_hosts))
        where = f"{settings['hostname']}:{settings['port']}"
        timeout = self.spec.connect_timeout
        try:
            client.connect(
                settings["hostname"],
                port=settings["port"],
                username=settings["user"],
                key_filename=settings["identity_files"] or None,
                allow_agent=True,
                look_for_keys=not settings["identity_files"],
                timeout=timeout,
                banner_timeout=timeout,
                auth_timeout=timeout,
                channel_timeout=timeout,
                sock=sock,
            )
        except _RevokedKey as exc:
            client.close()
            raise TargetError(
                f"host key of {where} ({exc.key.get_name()} {exc.key.fingerprint}) is marked "
                f"@revoked in {known_hosts}; refusing to connect"
            ) from exc
        except paramiko.BadHostKeyException as exc:
            client.close()
            if _fingerprint(exc.key) in revoked:
                raise TargetError(
                    f"host key of {where} ({exc.key.get_name()} {exc.key.fingerprint}) is marked "
                    f"@revoked in {known_hosts}; refusing to connect"
                ) from exc
            raise TargetError(
                f"host key of {where} does not match known_hosts {known_hosts} "
                f"(got {exc.key.get_name()} {exc.key.fingerprint}); refusing to connect",
                hint="if the host was rebuilt, remove its old line with ssh-keygen -R",
            ) from exc
        except paramiko.AuthenticationException as exc:
            client.close()
            raise TargetError(f"authentication failed for {settings['user']}@{where}") from exc
        except paramiko.SSHException as exc:
            client.close()
            text = str(exc)
            if "not found in known_hosts" in text:
                raise TargetError(
                    f"unknown host key for {where}: not in {known_hosts}",
                    hint="add it with ssh-keyscan after checking its fingerprint, "
                    "or pass --accept-new-host-keys to trust it on first use",
                ) from exc
            if "banner" in text.lower():
                raise TargetError(f"{where} sent no SSH banner within {timeout:g}s") from exc
            if text == "No existing session":  # paramiko gave up waiting for the handshake
                raise TargetError(
                    f"{where} did not complete the SSH handshake (banner and key exchange) "
                    f"within {timeout:g}s"
                ) from exc
            raise TargetError(f"SSH to {where} failed: {text}") from exc
        except TimeoutError as exc:
            client.close()
            raise TargetError(f"connecting to {where} timed out after {timeout:g}s") from exc
        except ConnectionRefusedError as exc:
            client.close()
            raise TargetError(f"connection to {where} refused") from exc
        except (OSError, EOFError) as exc:
            client.close()
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else repr(exc)
            raise TargetError(f"cannot connect to {where}: {reason}") from exc
        return client

    def close(self) -> None:
        while self._clients:
            self._clients.pop().close()

    def run_script(self, script: str, timeout: float) -> CommandResult:
        if not self._clients:
            raise TargetError("not connected")
        transport = self._clients[-1].get_transport()
        if transport is None or not transport.is_active():
            raise TargetError(f"SSH connection to {self.address} was closed")
        argv = self.shell_command(as_root=self._settings["user"] == "root")
        command = shlex.join(argv)
        token = f"@@AUDITOR-PGID-{secrets.token_hex(8)}@@"
        started = time.monotonic()
        output = BoundedOutput(self.spec.max_output)
        try:
            channel = transport.open_session(timeout=self.spec.connect_timeout)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise self._failed(transport, started, output, exc) from exc
        try:
            channel.exec_command(command)
            channel.sendall((_REPORT_PGID.format(token=token) + script).encode())
            channel.shutdown_write()
            _drain(channel, transport, output, started + timeout)
            status = -1 if output.full else channel.recv_exit_status()
        except TimeoutError as exc:
            raise TargetError(
                f"host script did not finish within {timeout:g}s (stopped on the host)"
            ) from exc
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise self._failed(transport, started, output, exc) from exc
        finally:
            if not (channel.exit_status_ready() and channel.eof_received) or output.full:
                self._stop(transport, _pgid(output.stderr, token), argv)
            channel.close()
        if output.stderr.startswith(token.encode()):  # the script's own report, not its output
            del output.stderr[: output.stderr.find(b"\n") + 1]
        result = output.result(command, status, time.monotonic() - started)
        if argv[0] == "sudo" and status != 0 and result.stderr.startswith("sudo:"):
            raise TargetError(
                f"sudo refused on {self.address}: {result.stderr.splitlines()[0]}",
                hint=SUDO_REFUSED_HINT,
            )
        return result

    def _stop(self, transport: paramiko.Transport, pgid: int | None, argv: list[str]) -> None:
        """Stop a script given up on (timeout, output cap) on the host: its process group is
        signalled from a channel of its own, with the script's privileges. (OpenSSH's sshd
        sends no SIGHUP when a channel without a terminal closes, and refuses RFC 4254
        "signal" requests for root logins.) Nothing to do when the connection is gone."""
        if pgid is None or not transport.is_active():
            return
        try:
            channel = transport.open_session(timeout=self.spec.connect_timeout)
            channel.exec_command(shlex.join(argv))
            channel.sendall(_KILL_GROUP.format(pgid=pgid).encode())
            channel.shutdown_write()
            channel.status_event.wait(self.spec.connect_timeout)
            channel.close()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            log.debug("could not stop process group %d on %s: %s", pgid, self.address, exc)

    def _failed(
        self, transport: paramiko.Transport, started: float, output: BoundedOutput, exc: Exception
    ) -> TargetError:
        """The error for a channel that failed: a dropped connection said as such."""
        if isinstance(exc, _Dropped) or not transport.is_active():
            read = len(output.stdout) + len(output.stderr)
            cause = transport.get_exception()
            why = f": {cause}" if cause is not None and str(cause) else ""
            return TargetError(
                f"the SSH connection to {self.address} dropped while the host script ran "
                f"(after {time.monotonic() - started:.1f}s and {read} bytes of output{why})"
            )
        return TargetError(f"running the audit script on {self.address} failed: {exc}")


def _dial(host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection that has shown an SSH banner is coming, so that refused, silent and
    stalled hosts each get their own one-line reason (paramiko reports them alike)."""
    where = f"{host}:{port}"
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except ConnectionRefusedError as exc:
        raise TargetError(f"connection to {where} refused") from exc
    except TimeoutError as exc:
        raise TargetError(f"connecting to {where} timed out after {timeout:g}s") from exc
    except OSError as exc:
        raise TargetError(f"cannot connect to {where}: {exc.strerror or exc}") from exc
    try:
        banner_started = bool(sock.recv(1, socket.MSG_PEEK))
    except TimeoutError as exc:
        sock.close()
        raise TargetError(
            f"{where} accepted the connection but sent no SSH banner within {timeout:g}s"
        ) from exc
    except OSError as exc:
        sock.close()
        raise TargetError(f"cannot read from {where}: {exc.strerror or exc}") from exc
    if not banner_started:
        sock.close()
        raise TargetError(f"{where} closed the connection before the SSH banner")
    return sock


class _Dropped(EOFError):
    """The SSH transport closed before the script's end of output."""


def _drain(
    channel: paramiko.Channel,
    transport: paramiko.Transport,
    output: BoundedOutput,
    deadline: float,
) -> None:
    """Read stdout and stderr together (so neither window fills and stalls the other) until
    the script's end of output, its output cap, a dropped connection (_Dropped, at once: not
    at the deadline) or the deadline (TimeoutError)."""
    while not output.full:
        if channel.recv_ready():
            output.add(channel.recv(65536))
            continue
        if channel.recv_stderr_ready():
            output.add(channel.recv_stderr(65536), stderr=True)
            continue
        if channel.exit_status_ready() and channel.eof_received:
            break
        if not transport.is_active():
            raise _Dropped
        if channel.closed:  # closed by the server without an end of output
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        select.select([channel], [], [], min(remaining, 0.5))
    while channel.recv_stderr_ready() and not output.full:
        output.add(channel.recv_stderr(65536), stderr=True)


# Prepended to the script: the script's process group id, on stderr, after a per-run token
# (removed from the output), so that a script given up on can be stopped as a whole.
_REPORT_PGID = (
    "read -r _ _ _ _ __auditor_pgid _ 2>/dev/null </proc/$$/stat "
    "&& printf '%s %s\\n' {token} \"$__auditor_pgid\" >&2\n"
)
# Run on a channel of its own: SIGTERM to the group (sudo passes it on to the root shell), up
# to a second for it to go, then SIGKILL.
_KILL_GROUP = (
    "kill -TERM -{pgid} 2>/dev/null || exit 0\n"
    "for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 -{pgid} 2>/dev/null || exit 0; sleep 0.1; done\n"
    "kill -KILL -{pgid} 2>/dev/null; exit 0\n"
)


def _pgid(stderr: bytes | bytearray, token: str) -> int | None:
    """The process group the script reported (its first line on stderr), if it did."""
    found = re.match(rb"%s ([0-9]+)\n" % token.encode(), bytes(stderr[:200]))
    return int(found.group(1)) if found and int(found.group(1)) > 1 else None


def _fingerprint(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.get_base64()}"


class _RevokedKey(paramiko.SSHException):
    def __init__(self, key: paramiko.PKey) -> None:
        super().__init__("revoked host key")
        self.key = key


class _RefuseRevoked(paramiko.MissingHostKeyPolicy):
    """Refuses a key marked @revoked (`_load_known_hosts` leaves it out of the known keys, so
    every revoked key comes here), and hands any other unknown key to `fallback`."""

    def __init__(
        self, revoked: set[str], fallback: paramiko.MissingHostKeyPolicy, known_hosts: Path
    ) -> None:
        self.revoked = revoked
        self.fallback = fallback
        self.known_hosts = known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: Any) -> None:
        if _fingerprint(key) in self.revoked:
            raise _RevokedKey(key)
        self.fallback.missing_host_key(client, hostname, key)


def _load_known_hosts(keys: paramiko.HostKeys, path: Path) -> set[str]:
    """Load known_hosts into `keys` as OpenSSH reads it; returns the keys marked @revoked
    (`type base64`), refused for every host. paramiko reads neither marker (it fails on the
    whole file): @cert-authority lines are skipped with a warning (paramiko cannot check host
    certificates), and a key that is both known and revoked is not known."""
    if not path.is_file():
        return set()
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise TargetError(f"cannot read known_hosts {path}: {exc.strerror}") from exc
    revoked: set[str] = set()
    entries: list[paramiko.hostkeys.HostKeyEntry] = []
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if fields[0] == "@revoked" and len(fields) >= 4:
            revoked.add(f"{fields[2]} {fields[3]}")
            continue
        if fields[0].startswith("@"):
            _warn_marker(str(path), number, fields[0])
            continue
        try:
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line, number)
        except (paramiko.SSHException, paramiko.hostkeys.InvalidHostKey, ValueError) as exc:
            raise TargetError(f"known_hosts {path}:{number}: unreadable line ({exc})") from exc
        if entry is not None:
            entries.append(entry)
    for entry in entries:
        if entry.key is not None and _fingerprint(entry.key) not in revoked:
            for name in entry.hostnames:
                keys.add(name, entry.key.get_name(), entry.key)
    return revoked


@functools.cache
def _warn_marker(path: str, number: int, marker: str) -> None:
    """Once per line and process: many targets share one known_hosts."""
    what = "host certificates are not checked" if marker == "@cert-authority" else "unknown"
    log.warning("known_hosts %s:%d: %s line ignored (%s)", path, number, marker, what)


def _resolve(spec: TargetSpec) -> dict[str, Any]:
    """Connection settings: the URL and flags first, then ~/.ssh/config, then defaults."""
    address = spec.address
    alias = address.host or ""
    config_path = Path(spec.ssh_config or DEFAULT_SSH_CONFIG).expanduser()
    found: dict[str, Any] = {}
    if config_path.exists():  # /dev/null: no config at all
        try:
            found = dict(paramiko.SSHConfig.from_path(str(config_path)).lookup(alias))
        except (OSError, paramiko.SSHException) as exc:
            raise TargetError(f"cannot read SSH config {config_path}: {exc}") from exc
    elif spec.ssh_config:
        raise TargetError(f"SSH config {config_path} not found")
    user = (address.user or spec.user or found.get("user")) or _local_user()
    port = address.port or spec.port or int(found.get("port", 22))
    configured = [Path(p).expanduser() for p in found.get("identityfile", [])]
    identity = list(spec.identity_files) or [str(p) for p in configured if p.is_file()]
    known_hosts = (
        spec.known_hosts
        or (found["userknownhostsfile"].split()[0] if "userknownhostsfile" in found else None)
        or DEFAULT_KNOWN_HOSTS
    )
    return {
        "hostname": found.get("hostname", alias),
        "user": user,
        "port": port,
        "identity_files": identity,
        "known_hosts": known_hosts,
        "proxyjump": found.get("proxyjump"),
    }


def _local_user() -> str:
    return os.environ.get("USER") or os.environ.get("LOGNAME") or "root"
