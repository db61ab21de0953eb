"""docker://, docker+ssh://: a Docker daemon through the Engine API (docker SDK, low level).

    docker://                          DOCKER_CONTEXT, DOCKER_HOST, the current Docker context,
                                       else unix:///var/run/docker.sock
    docker://unix:///path/docker.sock  a unix socket
    docker://tcp://host:2376           TCP; TLS (always verified) when a CA or client
                                       certificate is given (--tls-ca/--tls-cert/--tls-key,
                                       DOCKER_CERT_PATH, DOCKER_TLS_VERIFY or the context's)
    docker+ssh://user@host[:port]      the SDK's SSH transport: `docker system dial-stdio`
                                       on the host, over a connection that auditor opens and
                                       verifies like any ssh:// target

Every API call has a timeout (the first one --connect-timeout, the rest --command-timeout).
The daemon's host is reachable as a host target when the socket is local or the daemon is
reached over SSH: `host` is then a HostTarget the collector runs its read-only script through.
The docker SDK is imported on connect, not on import: it costs half a second.
"""

from __future__ import annotations

import os
import re
import socket
import ssl
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from auditor.config import TargetSpec
from auditor.errors import InputError, TargetError
from auditor.model import TargetKind
from auditor.target_url import docker_url
from auditor.targets.base import HostTarget, Target

if TYPE_CHECKING:
    import docker
    import paramiko

    from auditor.targets.ssh import SshTarget

DEFAULT_SOCKET = "/var/run/docker.sock"
LOCAL_DAEMON_URL = f"docker://unix://{DEFAULT_SOCKET}"
# The oldest Engine API the docker SDK 7 speaks; only used to ask the daemon for its own.
_BOOTSTRAP_API_VERSION = "1.24"
# Connections kept open to the daemon: enough for the collector's parallel calls (3 facts at
# once, two of them with 4 inspects each), so urllib3 never has to discard one.
_POOL_SIZE = 10

Transport = Literal["unix", "tcp", "ssh"]


@dataclass(frozen=True)
class TlsFiles:
    """Client-side TLS material for a TCP daemon; the server certificate is always verified
    (against `ca`, else the system CAs) unless a Docker context says SkipTLSVerify."""

    ca: str | None
    cert: str | None
    key: str | None
    verify: bool = True


@dataclass(frozen=True)
class Endpoint:
    """Where the daemon is and how to reach it, resolved from the URL and the environment."""

    transport: Transport
    address: str  # unix:///path, tcp://host:port, ssh://user@host:port
    origin: str  # what chose it: "url", "DOCKER_HOST", "context NAME", "default socket"
    tls: TlsFiles | None = None

    @property
    def socket_path(self) -> str | None:
        return self.address[len("unix://") :] if self.transport == "unix" else None


@dataclass(frozen=True)
class ContextInfo:
    """What a Docker CLI context says: its name, daemon address and TLS files."""

    name: str
    host: str | None
    tls: TlsFiles | None


def resolve_endpoint(
    spec: TargetSpec,
    env: Mapping[str, str],
    context: Callable[[str | None], ContextInfo | None],
) -> Endpoint:
    """The daemon a spec names. docker:// follows the Docker CLI's order: DOCKER_CONTEXT,
    DOCKER_HOST, the config's current context, then the default socket. Pure apart from
    `context`, which loads a named (or, given None, the current) Docker context."""
    if spec.address.daemon:
        return _endpoint(spec.address.daemon, "url", spec, env)
    if env.get("DOCKER_CONTEXT") and env["DOCKER_CONTEXT"] != "default":
        found = context(env["DOCKER_CONTEXT"])
        if found is None:
            name = env["DOCKER_CONTEXT"]
            raise TargetError(f"Docker context {name!r} (from DOCKER_CONTEXT) not found")
        return _from_context(found, spec, env)
    if env.get("DOCKER_HOST"):
        host = env["DOCKER_HOST"]
        try:
            daemon = docker_url(host, "docker://" + host).daemon
        except InputError as exc:
            raise TargetError(f"DOCKER_HOST={host!r} cannot be audited: {exc.reason}") from None
        return _endpoint(daemon, "DOCKER_HOST", spec, env)
    found = context(None)
    if found is not None and found.name != "default" and found.host:
        return _from_context(found, spec, env)
    return Endpoint("unix", f"unix://{DEFAULT_SOCKET}", "default socket")


def _from_context(found: ContextInfo, spec: TargetSpec, env: Mapping[str, str]) -> Endpoint:
    if not found.host:
        raise TargetError(f"Docker context {found.name!r} names no Docker endpoint")
    endpoint = _endpoint(found.host, f"context {found.name}", spec, env)
    if endpoint.transport == "tcp" and endpoint.tls is None and found.tls is not None:
        endpoint = replace(endpoint, tls=found.tls)
    return endpoint


def _endpoint(address: str, origin: str, spec: TargetSpec, env: Mapping[str, str]) -> Endpoint:
    inner = address.split("://", 1)[0].lower()
    if inner == "unix":
        return Endpoint("unix", address, origin)
    if inner == "ssh":
        return Endpoint("ssh", address, origin)
    if inner != "tcp":
        raise TargetError(f"cannot audit a Docker daemon at {address!r} (unix, tcp, ssh only)")
    return Endpoint("tcp", address, origin, _tls_files(spec, env))


def _tls_files(spec: TargetSpec, env: Mapping[str, str]) -> TlsFiles | None:
    """TLS material for TCP: the spec's files first, then DOCKER_CERT_PATH (or ~/.docker with
    DOCKER_TLS_VERIFY) holding ca.pem, cert.pem, key.pem as the Docker CLI expects."""
    if spec.tls_ca or spec.tls_cert or spec.tls_key:
        if bool(spec.tls_cert) != bool(spec.tls_key):
            raise TargetError("a TLS client certificate needs its key, and a key its certificate")
        return TlsFiles(spec.tls_ca, spec.tls_cert, spec.tls_key)
    cert_path = env.get("DOCKER_CERT_PATH")
    if not cert_path and env.get("DOCKER_TLS_VERIFY"):
        cert_path = str(Path("~/.docker").expanduser())
    if not cert_path:
        return None
    folder = Path(cert_path).expanduser()

    def present(name: str) -> str | None:
        return str(folder / name) if (folder / name).is_file() else None

    cert, key = present("cert.pem"), present("key.pem")
    if not cert or not key:
        cert = key = None
    return TlsFiles(present("ca.pem"), cert, key)


class DockerTarget(Target):
    """A Docker daemon. `api` is the SDK's low-level APIClient; `host` the daemon's host when
    auditor can run its read-only script there (local socket, or SSH), else None with
    `host_unavailable` saying why."""

    kind = TargetKind.DOCKER

    def __init__(self, spec: TargetSpec) -> None:
        super().__init__(spec)
        self.endpoint: Endpoint | None = None
        self.host: HostTarget | None = None
        self.host_unavailable = "not connected"
        self.version_data: dict[str, Any] = {}
        self._api: docker.APIClient | None = None

    @property
    def api(self) -> docker.APIClient:
        if self._api is None:
            raise TargetError("not connected")
        return self._api

    def connect(self) -> None:
        endpoint = resolve_endpoint(self.spec, os.environ, _load_context)
        self.endpoint = endpoint
        try:
            self._connect(endpoint)
        except BaseException:
            self.close()  # a half-open SSH connection or client is not left behind
            raise
        if self.host is None:
            self.host_unavailable = (
                f"the daemon is reached over TCP ({endpoint.address}): its host's files cannot "
                "be read through the Engine API; audit it as docker+ssh:// or the host as ssh://"
            )
        else:
            self.host_unavailable = ""

    def _connect(self, endpoint: Endpoint) -> None:
        import docker  # the SDK is heavy: imported when a Docker target is audited

        timeout = self.spec.connect_timeout
        if endpoint.transport == "ssh":
            from auditor.targets.ssh import SshTarget

            host = SshTarget(replace(self.spec, url=endpoint.address))
            self.host = host
            host.connect()
            api = docker.APIClient(
                base_url=endpoint.address,
                version=_BOOTSTRAP_API_VERSION,
                timeout=timeout,
                use_ssh_client=True,  # no connection made here: our adapter replaces it
            )
            api.mount("http+docker://ssh", _verified_ssh_adapter(_paramiko_client(host), timeout))
        else:
            tls: Any = False
            if endpoint.tls is not None:
                tls = _tls_config(endpoint.tls)
            api = docker.APIClient(
                base_url=endpoint.address,
                version=_BOOTSTRAP_API_VERSION,
                timeout=timeout,
                tls=tls,
            )
            if endpoint.transport == "unix":
                from auditor.targets.local import LocalTarget

                api.mount("http+docker://", _one_pool_unix_adapter(endpoint.address, timeout))
                self.host = LocalTarget(replace(self.spec, url="local://"))
        # The TLS settings above are the ones to trust: without this, requests would let
        # REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE replace the CA and route TCP through HTTPS_PROXY.
        api.trust_env = False
        self._api = api
        try:
            version = api.version(api_version=False)
        except Exception as exc:
            raise TargetError(describe_error(exc, endpoint, timeout)) from exc
        if not isinstance(version, dict) or "ApiVersion" not in version:
            raise TargetError(f"{endpoint.address} did not answer like a Docker daemon")
        self.version_data = version
        # Speak the daemon's API version, but never one newer than the SDK knows.
        negotiated = min(
            (str(version["ApiVersion"]), docker.constants.DEFAULT_DOCKER_API_VERSION),
            key=_version_key,
        )
        api._version = negotiated  # the SDK's own negotiation ("auto") has no timeout hook
        api.timeout = self.spec.command_timeout

    def close(self) -> None:
        api, self._api = self._api, None
        if api is not None:
            api.close()
        host, self.host = self.host, None
        if host is not None:
            host.close()

    def describe(self, exc: BaseException) -> str:
        """A one-line reason for an error raised by an API call on this target."""
        assert self.endpoint is not None
        return describe_error(exc, self.endpoint, self.spec.command_timeout)


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version))


def _load_context(name: str | None) -> ContextInfo | None:
    from docker.context import ContextAPI
    from docker.errors import ContextException

    try:
        found = ContextAPI.get_context(name)
    except ContextException as exc:
        raise TargetError(f"cannot load Docker context {name or '(current)'}: {exc}") from exc
    if found is None:
        return None
    tls = None
    config = found.TLSConfig
    if config is not None:
        cert = config.cert or (None, None)
        tls = TlsFiles(config.ca_cert, cert[0], cert[1], verify=bool(config.verify))
    return ContextInfo(found.Name, found.Host, tls)


def _tls_config(files: TlsFiles) -> Any:
    from docker.errors import TLSParameterError
    from docker.tls import TLSConfig

    try:
        return TLSConfig(
            client_cert=(files.cert, files.key) if files.cert and files.key else None,
            ca_cert=files.ca,
            verify=files.verify,
        )
    except TLSParameterError as exc:
        raise TargetError(f"bad TLS files: {exc}") from exc


def _paramiko_client(host: SshTarget) -> paramiko.SSHClient:
    """The connected (and verified) paramiko client of an SSH host target."""
    clients = host._clients  # the last one is the host itself (the others are ProxyJumps)
    if not clients:
        raise TargetError("not connected")
    return clients[-1]


def _one_pool_unix_adapter(address: str, timeout: float) -> Any:
    """The SDK's unix-socket transport with one connection pool for every URL. The SDK keys
    its pools by URL, so each inspect of a new id would open (and later close) a connection
    of its own: a third of the time of an inspect."""
    from docker.transport import UnixHTTPAdapter

    class OnePoolUnixAdapter(UnixHTTPAdapter):  # type: ignore[misc]
        def get_connection(self, url: str, proxies: Any = None) -> Any:
            return super().get_connection("http+docker://localhost", proxies)

    return OnePoolUnixAdapter("http+" + address, timeout=timeout, max_pool_size=_POOL_SIZE)


def _verified_ssh_adapter(client: paramiko.SSHClient, timeout: float) -> Any:
    """The SDK's SSH transport over a paramiko client auditor opened and verified. The SDK's
    own would load ~/.ssh/known_hosts only, ignore our keys, config and timeouts."""
    from docker.transport import SSHHTTPAdapter
    from docker.transport.sshconn import SSHConnectionPool

    class VerifiedSSHAdapter(SSHHTTPAdapter):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__("ssh://auditor", timeout=timeout, shell_out=False)

        def _create_paramiko_client(self, base_url: str) -> None:
            self.ssh_client = client

        def _connect(self) -> None:
            transport = client.get_transport()
            if transport is None or not transport.is_active():
                raise ConnectionError("the SSH connection to the Docker host was closed")

        def get_connection(self, url: str, proxies: Any = None) -> Any:
            # One pool for every URL: the SDK keys pools by URL, so each inspect of a new id
            # would open a session channel of its own and soon pass sshd's MaxSessions (10).
            with self.pools.lock:
                pool = self.pools.get("ssh")
                if pool is None:
                    self._connect()
                    pool = SSHConnectionPool(
                        ssh_client=client, timeout=self.timeout, maxsize=_POOL_SIZE
                    )
                    self.pools["ssh"] = pool
            return pool

    return VerifiedSSHAdapter()


# --- error descriptions --------------------------------------------------------------------


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and everything it wraps: __cause__, __context__, urllib3 .reason, exception args."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked += list(current.args)
        todo.extend(e for e in linked if isinstance(e, BaseException))


def describe_error(exc: BaseException, endpoint: Endpoint, timeout: float) -> str:
    """One line saying why a call to the daemon failed: unreachable, TLS, permission, timeout,
    or what the daemon answered."""
    where = endpoint.address
    causes = list(_causes(exc))
    for cause in causes:
        if isinstance(cause, TargetError):
            return str(cause)
    for cause in causes:
        if isinstance(cause, ssl.SSLCertVerificationError):
            detail = getattr(cause, "verify_message", None) or _ssl_detail(cause)
            return f"TLS verification of {where} failed: {detail}"
        if isinstance(cause, ssl.SSLError):
            return f"TLS handshake with {where} failed: {_ssl_detail(cause)}"
    for cause in causes:
        if isinstance(cause, PermissionError):
            return (
                f"permission denied on the Docker socket {endpoint.socket_path or where} "
                "(run as root or as a member of the socket's group)"
            )
        if isinstance(cause, FileNotFoundError):
            return f"no Docker socket at {endpoint.socket_path or where}: is dockerd running?"
        if isinstance(cause, ConnectionRefusedError):
            return f"connection to the Docker daemon at {where} refused"
        if isinstance(cause, TimeoutError):
            return f"the Docker daemon at {where} did not answer within {timeout:g}s"
    names = {type(c).__name__ for c in causes}
    if names & {"ConnectTimeout", "ReadTimeout", "ConnectTimeoutError", "ReadTimeoutError"}:
        return f"the Docker daemon at {where} did not answer within {timeout:g}s"
    for cause in causes:
        response = getattr(cause, "response", None)
        status = getattr(response, "status_code", None)
        if status is not None:
            explanation = getattr(cause, "explanation", None) or getattr(response, "reason", "")
            text = _one_line(str(explanation))
            if status == 400 and "HTTPS" in text:
                text += " (the daemon wants TLS: give --tls-ca, or DOCKER_CERT_PATH)"
            return f"{where} answered HTTP {status}: {text}"
    if endpoint.transport == "ssh" and names & {"RemoteDisconnected", "ProtocolError"}:
        return (
            f"`docker system dial-stdio` on {where} closed the connection: is the docker CLI "
            "installed there and does DOCKER_HOST (or the default socket) reach dockerd?"
        )
    detail = _one_line(str(exc)) or type(exc).__name__
    return f"cannot talk to the Docker daemon at {where}: {detail}"


def _ssl_detail(error: ssl.SSLError) -> str:
    """The ssl module's own words ("certificate verify failed", "tlsv13 alert ...")."""
    reason = getattr(error, "reason", None)
    if reason:
        return str(reason).replace("_", " ").lower()
    text = error.args[1] if len(error.args) > 1 else str(error)
    return _one_line(str(text))


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line[:300] + ("…" if len(line) > 300 else "")


# --- the local daemon, for `auditor run` without targets --------------------------------------


def local_daemon_answers(path: str = DEFAULT_SOCKET, timeout: float = 1.0) -> bool:
    """True when a Docker daemon answers GET /_ping on the unix socket at `path` within
    `timeout` seconds. Raw HTTP on a socket: no SDK import, so `auditor run` stays quick."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            reply = sock.recv(64)
    except OSError:
        return False
    return reply.startswith(b"HTTP/1.") and reply[9:12] == b"200"
