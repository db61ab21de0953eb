"""Docker target URLs, how docker:// picks its daemon, and the one-line error reasons."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import requests
import urllib3

from auditor.config import TargetSpec
from auditor.errors import InventoryError, TargetError
from auditor.target_url import parse_target_url
from auditor.targets.docker import (
    ContextInfo,
    Endpoint,
    TlsFiles,
    describe_error,
    resolve_endpoint,
)


@pytest.mark.parametrize(
    "url",
    [
        "docker://",
        "docker://unix:///var/run/docker.sock",
        "docker:///run/user/1000/docker.sock",
        "docker://tcp://10.0.0.5:2376",
        "docker://tcp://docker.example.com",
        "docker://ssh://ops@build-1:2222",
        "docker+ssh://ops@build-1",
        "docker+ssh://build-1:2222",
    ],
)
def test_valid_docker_urls(url: str) -> None:
    assert parse_target_url(url).scheme in ("docker", "docker+ssh")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("docker://10.0.0.5:2376", "expected docker://, docker://unix:///path"),
        ("docker://unix://relative.sock", "unix:// needs an absolute path"),
        ("docker://tcp://:2376", "tcp://host:port"),
        ("docker://tcp://host:99999", "bad port"),
        ("docker://npipe:////./pipe/docker_engine", "unknown daemon address scheme 'npipe'"),
        ("docker+ssh://", "docker+ssh://[user@]host[:port]"),
        ("docker+ssh://host:port", "bad port"),
    ],
)
def test_invalid_docker_urls_say_why(url: str, problem: str) -> None:
    with pytest.raises(InventoryError, match="Docker URL|docker") as raised:
        parse_target_url(url)
    assert problem in raised.value.reason


def _no_context(name: str | None) -> ContextInfo | None:
    return None if name else ContextInfo("default", None, None)


def _resolve(url: str, env: dict[str, str], context=_no_context, **spec: object) -> Endpoint:
    return resolve_endpoint(TargetSpec(url=url, **spec), env, context)  # type: ignore[arg-type]


def test_docker_url_defaults_to_the_local_socket() -> None:
    endpoint = _resolve("docker://", {})
    assert (endpoint.transport, endpoint.address, endpoint.origin) == (
        "unix", "unix:///var/run/docker.sock", "default socket"
    )  # fmt: skip
    assert endpoint.socket_path == "/var/run/docker.sock"


def test_docker_host_and_contexts_follow_the_docker_cli_order() -> None:
    remote = ContextInfo("remote", "ssh://ops@build-1", None)

    def contexts(name: str | None) -> ContextInfo | None:
        return {None: remote, "remote": remote}.get(name)

    assert _resolve("docker://", {}, contexts).address == "ssh://ops@build-1"
    env = {"DOCKER_HOST": "unix:///run/alt.sock"}
    assert _resolve("docker://", env, contexts).origin == "DOCKER_HOST"
    env["DOCKER_CONTEXT"] = "remote"
    chosen = _resolve("docker://", env, contexts)
    assert (chosen.transport, chosen.origin) == ("ssh", "context remote")
    # an explicit URL wins over everything
    assert _resolve("docker://unix:///x.sock", env, contexts).address == "unix:///x.sock"
    with pytest.raises(TargetError, match="Docker context 'gone'"):
        _resolve("docker://", {"DOCKER_CONTEXT": "gone"}, contexts)
    with pytest.raises(TargetError, match="DOCKER_HOST='fd://'"):
        _resolve("docker://", {"DOCKER_HOST": "fd://"})


def test_tcp_tls_material_comes_from_flags_then_docker_cert_path(tmp_path: Path) -> None:
    flags = _resolve("docker://tcp://h:2376", {}, tls_ca="/ca.pem", tls_cert="/c.pem", tls_key="/k")
    assert flags.tls == TlsFiles("/ca.pem", "/c.pem", "/k")
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("x")
    env = {"DOCKER_CERT_PATH": str(tmp_path)}
    from_env = _resolve("docker://tcp://h:2376", env)
    assert from_env.tls == TlsFiles(
        str(tmp_path / "ca.pem"), str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    )
    assert from_env.tls.verify is True  # verification is never switched off by the environment
    assert _resolve("docker://tcp://h:2375", {}).tls is None
    with pytest.raises(TargetError, match="needs its key"):
        _resolve("docker://tcp://h:2376", {}, tls_cert="/c.pem")


def test_a_context_supplies_tls_for_its_tcp_daemon() -> None:
    tls = TlsFiles("/ctx/ca.pem", "/ctx/cert.pem", "/ctx/key.pem")
    context = ContextInfo("prod", "tcp://prod:2376", tls)
    endpoint = _resolve("docker://", {"DOCKER_CONTEXT": "prod"}, lambda name: context)
    assert endpoint.tls == tls and endpoint.origin == "context prod"


UNIX = Endpoint("unix", "unix:///run/docker.sock", "url")
TCP = Endpoint("tcp", "tcp://10.0.0.5:2376", "url")


def _wrapped(cause: BaseException) -> requests.exceptions.ConnectionError:
    """How requests reports a failed connection: cause inside urllib3's errors."""
    protocol = urllib3.exceptions.ProtocolError("Connection aborted.", cause)
    return requests.exceptions.ConnectionError(protocol)


@pytest.mark.parametrize(
    ("endpoint", "error", "reason"),
    [
        (UNIX, _wrapped(FileNotFoundError(2, "No such file or directory")),
         "no Docker socket at /run/docker.sock: is dockerd running?"),
        (UNIX, _wrapped(PermissionError(13, "Permission denied")),
         "permission denied on the Docker socket /run/docker.sock (run as root or as a member "
         "of the socket's group)"),
        (TCP, _wrapped(ConnectionRefusedError(111, "Connection refused")),
         "connection to the Docker daemon at tcp://10.0.0.5:2376 refused"),
        (TCP, requests.exceptions.ConnectTimeout("timed out"),
         "the Docker daemon at tcp://10.0.0.5:2376 did not answer within 5s"),
        (TCP, requests.exceptions.SSLError(ssl.SSLError(1, "tlsv13 alert certificate required")),
         "TLS handshake with tcp://10.0.0.5:2376 failed: tlsv13 alert certificate required"),
        (TCP, TargetError("already explained"), "already explained"),
    ],
)  # fmt: skip
def test_errors_become_one_line_reasons(
    endpoint: Endpoint, error: BaseException, reason: str
) -> None:
    assert describe_error(error, endpoint, 5.0) == reason


def test_an_http_error_says_what_the_daemon_answered() -> None:
    response = requests.Response()
    response.status_code = 400
    response.reason = "Bad Request"
    error = requests.exceptions.HTTPError(response=response)
    described = describe_error(error, TCP, 5.0)
    assert described.startswith("tcp://10.0.0.5:2376 answered HTTP 400")
