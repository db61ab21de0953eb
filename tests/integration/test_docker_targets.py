"""Reaching Docker daemons: unix socket, TCP with verified TLS (a second real dockerd with
certificates made here), docker+ssh:// through a real sshd, and the ways each can fail."""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from servers import sshd
from servers.dockerd import DockerDaemon, busybox_image
from servers.process import free_port, require_executable, start_process, stop_process

from auditor import engine
from auditor.config import TargetSpec
from auditor.errors import TargetError
from auditor.model import Status
from auditor.profiles import LoadedProfile, load_profile
from auditor.targets.docker import DockerTarget, local_daemon_answers

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def profile() -> LoadedProfile:
    return load_profile()


def _errors_only(profile: LoadedProfile, spec: TargetSpec) -> str:
    """Audit spec, which must fail as a whole; every docker check is an error; the reason."""
    record = engine.collect(profile, spec)
    assert record.error is not None and record.facts == ()
    results = engine.evaluate(profile, record, profile.variables)
    assert results and {r.status for r in results} == {Status.ERROR}
    assert len(record.error.splitlines()) == 1
    return record.error


# --- unreachable ------------------------------------------------------------------------------


def test_a_missing_socket_is_an_error_with_its_reason(
    profile: LoadedProfile, tmp_path: Path
) -> None:
    spec = TargetSpec(url=f"docker://unix://{tmp_path}/docker.sock")
    reason = _errors_only(profile, spec)
    assert reason == f"no Docker socket at {tmp_path}/docker.sock: is dockerd running?"


def test_a_refused_tcp_port_is_an_error(profile: LoadedProfile, closed_port: int) -> None:
    reason = _errors_only(profile, TargetSpec(url=f"docker://tcp://127.0.0.1:{closed_port}"))
    assert reason == f"connection to the Docker daemon at tcp://127.0.0.1:{closed_port} refused"


def test_a_silent_daemon_times_out_on_the_connect_timeout(
    profile: LoadedProfile, stalling_server: sshd.TcpEndpoint
) -> None:
    url = f"docker://tcp://{stalling_server.host}:{stalling_server.port}"
    started = time.monotonic()
    reason = _errors_only(profile, TargetSpec(url=url, connect_timeout=1.0))
    assert time.monotonic() - started < 10
    assert reason.endswith("did not answer within 1s")


def test_a_socket_that_is_not_docker_is_an_error(profile: LoadedProfile, tmp_path: Path) -> None:
    path = tmp_path / "other.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        server.listen(1)
        spec = TargetSpec(url=f"docker://unix://{path}", connect_timeout=1.0)
        reason = _errors_only(profile, spec)
    assert "did not answer within 1s" in reason


def test_the_local_daemon_probe(dockerd_server: DockerDaemon, tmp_path: Path) -> None:
    assert local_daemon_answers(str(dockerd_server.socket_path))
    assert not local_daemon_answers(str(tmp_path / "absent.sock"))
    path = tmp_path / "mute.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        server.listen(1)
        started = time.monotonic()
        assert not local_daemon_answers(str(path), timeout=0.5)
        assert time.monotonic() - started < 3


# --- TCP with TLS -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsDaemon:
    """A dockerd on 127.0.0.1 that requires TLS client certificates from its own CA."""

    port: int
    ca: Path
    cert: Path
    key: Path
    wrong_ca: Path
    stranger_cert: Path
    stranger_key: Path
    socket_path: Path


class _Ca:
    """A throw-away certificate authority."""

    def __init__(self, name: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def write(self, path: Path) -> Path:
        path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        return path

    def issue(self, folder: Path, stem: str, *, server: bool) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, stem)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        else:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False
            )
        cert = builder.sign(self.key, hashes.SHA256())
        cert_path, key_path = folder / f"{stem}.pem", folder / f"{stem}-key.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        key_path.chmod(0o600)
        return cert_path, key_path


@pytest.fixture(scope="module")
def tls_daemon(servers_dir: Path) -> Iterator[TlsDaemon]:
    """A second real dockerd, on a unix socket and on TCP 127.0.0.1 with --tlsverify."""
    workdir = servers_dir / "dockerd-tls"
    workdir.mkdir()
    ca, other = _Ca("auditor test CA"), _Ca("some other CA")
    server_cert, server_key = ca.issue(workdir, "server", server=True)
    client_cert, client_key = ca.issue(workdir, "client", server=False)
    stranger_cert, stranger_key = other.issue(workdir, "stranger", server=False)
    port = free_port()
    socket_path = workdir / "docker.sock"
    (workdir / "daemon.json").write_text("{}\n")
    argv = [
        require_executable("dockerd"),
        f"--host=unix://{socket_path}",
        f"--host=tcp://127.0.0.1:{port}",
        "--tlsverify",
        f"--tlscacert={ca.write(workdir / 'ca.pem')}",
        f"--tlscert={server_cert}",
        f"--tlskey={server_key}",
        f"--data-root={workdir / 'data'}",
        f"--exec-root={workdir / 'exec'}",
        f"--pidfile={workdir / 'docker.pid'}",
        f"--config-file={workdir / 'daemon.json'}",
        "--iptables=false",
        "--ip6tables=false",
        "--bridge=none",
    ]
    log = workdir / "dockerd.log"
    proc = start_process(argv, what="dockerd (TLS)", log_path=log, ready=socket_path.exists)
    try:
        deadline = time.monotonic() + 60
        while not local_daemon_answers(str(socket_path)):
            assert time.monotonic() < deadline, "the TLS dockerd did not come up"
            time.sleep(0.1)
        yield TlsDaemon(
            port=port,
            ca=workdir / "ca.pem",
            cert=client_cert,
            key=client_key,
            wrong_ca=other.write(workdir / "wrong-ca.pem"),
            stranger_cert=stranger_cert,
            stranger_key=stranger_key,
            socket_path=socket_path,
        )
    finally:
        stop_process(proc, timeout=30)
        for state in ("data", "exec"):
            shutil.rmtree(workdir / state, ignore_errors=True)


def test_tcp_with_verified_tls_audits_the_daemon(
    profile: LoadedProfile, tls_daemon: TlsDaemon
) -> None:
    spec = TargetSpec(
        url=f"docker://tcp://127.0.0.1:{tls_daemon.port}",
        tls_ca=str(tls_daemon.ca),
        tls_cert=str(tls_daemon.cert),
        tls_key=str(tls_daemon.key),
    )
    record = engine.collect(profile, spec)
    assert record.error is None
    facts = {f.name: f for f in record.facts}
    assert facts["docker.endpoint"].data["tls"] is True
    assert facts["docker.endpoint"].data["client_certificate"] is True
    assert facts["docker.info"].error is None and facts["docker.containers"].error is None
    # the daemon's host cannot be read over TCP: its host-side checks are errors, with why
    assert "reached over TCP" in (facts["docker.daemon_host"].error or "")
    results = engine.evaluate(profile, record, profile.variables)
    by_check = {r.check_id: r for r in results if r.subject.kind == "docker"}
    assert by_check["docker.daemon.tcp-tls"].status is Status.PASS
    assert by_check["docker.host.data-root-partition"].status is Status.ERROR
    assert "reached over TCP" in by_check["docker.host.data-root-partition"].message


def test_tcp_tls_settings_from_docker_cert_path(
    tls_daemon: TlsDaemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, source in (("ca.pem", tls_daemon.ca), ("cert.pem", tls_daemon.cert)):
        shutil.copy(source, tmp_path / name)
    shutil.copy(tls_daemon.key, tmp_path / "key.pem")
    monkeypatch.setenv("DOCKER_CERT_PATH", str(tmp_path))
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{tls_daemon.port}")
    with DockerTarget(TargetSpec(url="docker://")) as target:
        assert target.endpoint is not None and target.endpoint.origin == "DOCKER_HOST"
        assert target.api.info()["DockerRootDir"].endswith("dockerd-tls/data")


def test_tls_with_a_wrong_ca_is_an_error(profile: LoadedProfile, tls_daemon: TlsDaemon) -> None:
    spec = TargetSpec(
        url=f"docker://tcp://127.0.0.1:{tls_daemon.port}",
        tls_ca=str(tls_daemon.wrong_ca),
        tls_cert=str(tls_daemon.cert),
        tls_key=str(tls_daemon.key),
    )
    reason = _errors_only(profile, spec)
    assert reason.startswith(f"TLS verification of tcp://127.0.0.1:{tls_daemon.port} failed")
    assert "certificate" in reason


def test_a_client_certificate_from_another_ca_is_refused(
    profile: LoadedProfile, tls_daemon: TlsDaemon
) -> None:
    spec = TargetSpec(
        url=f"docker://tcp://127.0.0.1:{tls_daemon.port}",
        tls_ca=str(tls_daemon.ca),
        tls_cert=str(tls_daemon.stranger_cert),
        tls_key=str(tls_daemon.stranger_key),
    )
    reason = _errors_only(profile, spec)
    assert reason.startswith(f"TLS handshake with tcp://127.0.0.1:{tls_daemon.port} failed")


def test_plain_http_to_a_tls_daemon_says_it_wants_tls(
    profile: LoadedProfile, tls_daemon: TlsDaemon
) -> None:
    reason = _errors_only(profile, TargetSpec(url=f"docker://tcp://127.0.0.1:{tls_daemon.port}"))
    assert "HTTP 400" in reason and "wants TLS" in reason


# --- docker+ssh:// ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def docker_sshd(dockerd_server: DockerDaemon, servers_dir: Path) -> Iterator[sshd.SshServer]:
    """A real sshd whose root login points the docker CLI at the test dockerd.

    `docker system dial-stdio`, which the SDK's SSH transport runs on the remote host, reads
    DOCKER_HOST; a forced command in authorized_keys sets it and then runs whatever was asked
    (the dial-stdio, or auditor's host script) unchanged.
    """
    workdir = servers_dir / "sshd-docker"
    workdir.mkdir()
    with sshd.sshd_server(workdir) as server:
        keys = workdir / "authorized_keys" / sshd.ROOT_USER
        forced = (
            f"DOCKER_HOST={dockerd_server.base_url}; export DOCKER_HOST; "
            'eval \\"$SSH_ORIGINAL_COMMAND\\"'
        )
        keys.write_text(f'command="{forced}" {keys.read_text()}')
        yield server


def _ssh_spec(server: sshd.SshServer, **changes: object) -> TargetSpec:
    settings: dict[str, object] = {
        "url": f"docker+ssh://root@{server.host}:{server.port}",
        "known_hosts": str(server.known_hosts_path),
        "identity_files": (str(server.client_key_path),),
        "ssh_config": "/dev/null",
    }
    settings.update(changes)
    return TargetSpec(**settings)  # type: ignore[arg-type]


def test_docker_over_ssh_audits_the_daemon_and_its_host(
    profile: LoadedProfile, dockerd_server: DockerDaemon, docker_sshd: sshd.SshServer
) -> None:
    busybox_image(dockerd_server.base_url)
    record = engine.collect(profile, _ssh_spec(docker_sshd))
    assert record.error is None
    facts = {f.name: f for f in record.facts}
    failed = {name: f.error for name, f in facts.items() if f.error}
    assert not failed
    assert facts["docker.endpoint"].data["transport"] == "ssh"
    # the host-side facts come through the same SSH connection, from the same dockerd
    assert facts["docker.daemon_config"].data["pid"] == dockerd_server.pid
    assert facts["docker.daemon_host"].data["host"] == f"ssh://root@127.0.0.1:{docker_sshd.port}"
    assert any(i["RepoTags"] == ["auditor-test/busybox:1"] for i in facts["docker.images"].data)
    results = engine.evaluate(profile, record, profile.variables)
    assert not [r for r in results if r.status is Status.ERROR]


def test_docker_over_ssh_refuses_an_unknown_host_key(
    profile: LoadedProfile, docker_sshd: sshd.SshServer
) -> None:
    spec = _ssh_spec(docker_sshd, known_hosts=str(docker_sshd.wrong_known_hosts_path))
    reason = _errors_only(profile, spec)
    assert "does not match known_hosts" in reason


def test_docker_over_ssh_without_a_daemon_behind_says_why(
    profile: LoadedProfile, sshd_server: sshd.SshServer
) -> None:
    """The plain test sshd sets no DOCKER_HOST, and its unprivileged user could not open a
    default socket anyway: dial-stdio finds no daemon and the target says so."""
    spec = _ssh_spec(
        sshd_server, url=f"docker+ssh://{sshd.NOSUDO_USER}@127.0.0.1:{sshd_server.port}"
    )
    with pytest.raises(TargetError) as failure, DockerTarget(spec):
        pass
    assert "dial-stdio" in str(failure.value)
