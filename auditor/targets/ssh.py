"""ssh://[user@]host[:port]: a Linux host over SSH with paramiko.

Trust on purpose: host keys are checked against known_hosts and an unknown or changed key is
an error for the target, unless the user opted in with --accept-new-host-keys (trust on first
use; a *changed* key is refused even then). ~/.ssh/config is honoured for HostName, User,
Port, IdentityFile, UserKnownHostsFile and ProxyJump. The whole audit is one exec channel.
"""

from __future__ import annotations

import fcntl
import os
import select
import shlex
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from auditor.config import TargetSpec
from auditor.errors import TargetError
from auditor.importfixes import defer_invoke
from auditor.targets.base import SUDO_REFUSED_HINT, CommandResult, HostTarget

defer_invoke()
import paramiko  # noqa: E402 - after defer_invoke, on purpose

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
        if known_hosts.is_file():
            try:
                client.load_host_keys(str(known_hosts))
            except (OSError, paramiko.SSHException) as exc:
                raise TargetError(f"cannot read known_hosts {known_hosts}: {exc}") from exc
        if self.spec.accept_new_host_keys:
            client.set_missing_host_key_policy(_AcceptNew(known_hosts))
        else:
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
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
        except paramiko.BadHostKeyException as exc:
            client.close()
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
        started = time.monotonic()
        deadline = started + timeout
        try:
            channel = transport.open_session(timeout=self.spec.connect_timeout)
            channel.exec_command(command)
            channel.sendall(script.encode())
            channel.shutdown_write()
            stdout, stderr = _drain(channel, deadline)
            status = channel.recv_exit_status()
        except TimeoutError as exc:
            raise TargetError(f"host script did not finish within {timeout:g}s") from exc
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise TargetError(f"running the audit script on {self.address} failed: {exc}") from exc
        result = CommandResult(
            command=command,
            exit_status=status,
            stdout=stdout.decode("utf-8", "replace"),
            stderr=stderr.decode("utf-8", "replace"),
            duration=time.monotonic() - started,
        )
        if argv[0] == "sudo" and status != 0 and result.stderr.startswith("sudo:"):
            raise TargetError(
                f"sudo refused on {self.address}: {result.stderr.splitlines()[0]}",
                hint=SUDO_REFUSED_HINT,
            )
        return result


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


def _drain(channel: paramiko.Channel, deadline: float) -> tuple[bytes, bytes]:
    """Read stdout and stderr together (so neither window fills and stalls the other)."""
    out: list[bytes] = []
    err: list[bytes] = []
    try:
        while True:
            if channel.recv_ready():
                out.append(channel.recv(65536))
                continue
            if channel.recv_stderr_ready():
                err.append(channel.recv_stderr(65536))
                continue
            if channel.exit_status_ready() and channel.eof_received:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            select.select([channel], [], [], min(remaining, 0.5))
        while channel.recv_stderr_ready():
            err.append(channel.recv_stderr(65536))
    finally:
        if not channel.exit_status_ready():
            channel.close()
    return b"".join(out), b"".join(err)


def _resolve(spec: TargetSpec) -> dict[str, Any]:
    """Connection settings: the URL and flags first, then ~/.ssh/config, then defaults."""
    parts = urlsplit(spec.url)
    alias = parts.hostname or ""
    config_path = Path(spec.ssh_config or DEFAULT_SSH_CONFIG).expanduser()
    found: dict[str, Any] = {}
    if config_path.exists():  # /dev/null: no config at all
        try:
            found = dict(paramiko.SSHConfig.from_path(str(config_path)).lookup(alias))
        except (OSError, paramiko.SSHException) as exc:
            raise TargetError(f"cannot read SSH config {config_path}: {exc}") from exc
    elif spec.ssh_config:
        raise TargetError(f"SSH config {config_path} not found")
    user = (
        unquote(parts.username) if parts.username else spec.user or found.get("user")
    ) or _local_user()
    port = parts.port or spec.port or int(found.get("port", 22))
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
