"""Host audits over SSH against a real OpenSSH sshd on 127.0.0.1 (tests/servers/sshd.py)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from servers import sshd
from servers.process import start_process, stop_process
from volatile import moving_host_checks

pytestmark = pytest.mark.integration


def audit(auditor_cli, tmp_path: Path, *args: str):
    report = tmp_path / "results.json"
    result = auditor_cli("run", "--quiet", "--report", f"json:{report}", *args)
    document = json.loads(report.read_text()) if report.exists() else None
    return result, document


def statuses(document, target=None):
    """check id -> sorted statuses of its results (on one target, if given)."""
    found: dict[str, list[str]] = {}
    for r in document["results"]:
        if target is None or r["target"] == target:
            found.setdefault(r["check_id"], []).append(r["status"])
    return {k: sorted(v) for k, v in found.items()}


def test_audit_over_ssh_matches_the_local_audit_of_the_same_host(
    auditor_cli, sshd_server, tmp_path
):
    """The test sshd runs on this machine: over SSH as root we must judge it exactly as
    the local audit does, check by check, with real passes and real failures."""
    before = sshd_server.count_exec_channels()
    result, remote = audit(auditor_cli, tmp_path, *sshd_server.auditor_args())
    channels = sshd_server.count_exec_channels() - before
    assert result.code in (0, 1), result.err
    assert channels == 1  # every host fact came from ONE exec channel

    target = remote["targets"][0]
    assert target["error"] is None
    assert target["url"] == f"ssh://root@127.0.0.1:{sshd_server.port}"
    fact = next(f for f in target["facts"] if f["name"] == "host.sysctl")
    assert fact["source"].startswith("/bin/sh -s") and len(fact["sha256"]) == 64
    assert fact["status"] == 0

    local_result, local = audit(auditor_cli, tmp_path, "--target", "local://")
    assert local_result.code in (0, 1)
    remote_statuses, local_statuses = statuses(remote), statuses(local)
    volatile = moving_host_checks()  # everything else is equal
    for check_id in volatile:
        remote_statuses.pop(check_id, None), local_statuses.pop(check_id, None)
    assert "host.net.listeners-allowlist" in volatile
    assert remote_statuses == local_statuses

    by_check = statuses(remote)
    assert by_check["host.os.container-optimized"] == ["fail"]  # Debian is general-purpose
    assert by_check["host.accounts.uid0-only-root"] == ["pass"]
    assert by_check["host.sshd.no-empty-passwords"] == ["pass"]
    assert "pass" in by_check["host.files.identity-perms"]
    failing = next(r for r in remote["results"] if r["check_id"] == "host.os.container-optimized")
    assert failing["observed"] == {"host.os.id": "debian"}
    assert "debian" in failing["message"]


def test_unknown_host_key_is_refused(auditor_cli, sshd_server, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    args = [*sshd_server.auditor_args(), "--known-hosts", str(empty)]
    result, document = audit(auditor_cli, tmp_path, *args)
    assert result.code == 3
    error = document["targets"][0]["error"]
    assert "unknown host key" in error and "--accept-new-host-keys" in error
    # not audited: once, with the reason, not one error row per check
    assert [r for r in document["results"] if r["target"] != "organisation"] == []
    (down,) = document["not_audited"]
    assert down["reason"] == error and down["checks"] > 0
    assert empty.read_text() == ""  # nothing was trusted behind the user's back


def test_accept_new_host_keys_is_an_explicit_opt_in_that_records_the_key(
    auditor_cli, sshd_server, tmp_path
):
    known_hosts = tmp_path / "known_hosts"
    args = [
        *sshd_server.auditor_args(),
        "--known-hosts",
        str(known_hosts),
        "--accept-new-host-keys",
    ]
    result, document = audit(auditor_cli, tmp_path, *args)
    assert result.code in (0, 1), result.err
    assert document["targets"][0]["error"] is None
    assert sshd_server.host_public_key_line.split()[1] in known_hosts.read_text()


def test_changed_host_key_is_refused_even_with_accept_new(auditor_cli, sshd_server, tmp_path):
    args = [
        *sshd_server.auditor_args(),
        "--known-hosts",
        str(sshd_server.wrong_known_hosts_path),
        "--accept-new-host-keys",
    ]
    result, document = audit(auditor_cli, tmp_path, *args)
    assert result.code == 3
    assert "does not match known_hosts" in document["targets"][0]["error"]


def test_closed_port_is_an_error_for_that_target(auditor_cli, sshd_server, closed_port, tmp_path):
    args = [*sshd_server.auditor_args(), "--target", f"ssh://root@127.0.0.1:{closed_port}"]
    result, document = audit(auditor_cli, tmp_path, *args)
    assert result.code in (0, 1)  # one dead target never sinks the run
    errors = {t["name"]: t["error"] for t in document["targets"]}
    assert errors[f"ssh://root@127.0.0.1:{sshd_server.port}"] is None
    assert "refused" in errors[f"ssh://root@127.0.0.1:{closed_port}"]
    dead = document["score"]["by_target"][f"ssh://root@127.0.0.1:{closed_port}"]
    assert dead["value"] is None and dead["coverage"] == 0.0  # no score; it lowers coverage
    assert [t["target"] for t in document["not_audited"]] == [f"ssh://root@127.0.0.1:{closed_port}"]


def test_stalled_host_times_out(auditor_cli, sshd_server, stalling_server, tmp_path):
    url = f"ssh://root@{stalling_server.host}:{stalling_server.port}"
    started = time.monotonic()
    result, document = audit(
        auditor_cli,
        tmp_path,
        *sshd_server.auditor_args(),
        "--target",
        url,
        "--connect-timeout",
        "1",
    )
    assert time.monotonic() - started < 20
    error = {t["name"]: t["error"] for t in document["targets"]}[url]
    assert "within 1s" in error or "timed out" in error


def test_sudo_refused_is_an_error_with_the_reason(auditor_cli, sshd_server, tmp_path):
    args = [*sshd_server.auditor_args(sshd.PWSUDO_USER), "--sudo"]
    result, document = audit(auditor_cli, tmp_path, *args)
    assert result.code == 3
    error = document["targets"][0]["error"]
    assert error.startswith("sudo refused") and "password" in error


def test_unprivileged_user_gets_errors_for_root_only_facts_never_passes(
    auditor_cli, sshd_server, tmp_path
):
    result, document = audit(auditor_cli, tmp_path, *sshd_server.auditor_args(sshd.NOSUDO_USER))
    assert result.code in (0, 1)
    shadow = next(
        r for r in document["results"] if r["check_id"] == "host.accounts.no-empty-passwords"
    )
    assert shadow["status"] == "error"
    assert "shadow" in shadow["message"] and "root" in shadow["message"]


def test_sudo_user_reads_root_only_facts(auditor_cli, sshd_server, tmp_path):
    result, document = audit(
        auditor_cli, tmp_path, *sshd_server.auditor_args(sshd.SUDO_USER), "--sudo"
    )
    assert result.code in (0, 1), result.err
    shadow = next(
        r for r in document["results"] if r["check_id"] == "host.accounts.no-empty-passwords"
    )
    assert shadow["status"] in ("pass", "fail")


def test_inventory_of_many_aliases_with_groups_and_variables(auditor_cli, sshd_server, tmp_path):
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "defaults:\n"
        f"  user: root\n  port: {sshd_server.port}\n  key: {sshd_server.client_key_path}\n"
        f"  known_hosts: {sshd_server.known_hosts_path}\n  ssh_config: /dev/null\n"
        "hosts:\n"
        "  alpha: {host: 127.0.0.1}\n"
        "  beta: {host: 127.0.0.1, vars: {container_os_ids: [debian]}}\n"
        "groups:\n"
        "  all: {hosts: [alpha, beta]}\n"
    )
    result, document = audit(
        auditor_cli, tmp_path, "--inventory", str(inventory), "--concurrency", "2"
    )
    assert result.code in (0, 1), result.err
    assert [t["name"] for t in document["targets"]] == ["alpha", "beta"]
    verdict = {
        r["target"]: r["status"]
        for r in document["results"]
        if r["check_id"] == "host.os.container-optimized"
    }
    assert verdict == {"alpha": "fail", "beta": "pass"}  # beta's own variable applied


def test_ssh_config_alias_with_proxyjump(auditor_cli, sshd_server, tmp_path):
    """HostName, User, Port, IdentityFile and ProxyJump come from the SSH config; both hops
    are verified against known_hosts, and the audit still uses one exec channel."""
    config = tmp_path / "ssh_config"
    common = (
        f"  HostName 127.0.0.1\n  Port {sshd_server.port}\n  User root\n"
        f"  IdentityFile {sshd_server.client_key_path}\n"
    )
    config.write_text(
        f"Host jumpbox\n{common}\nHost behind-the-jump\n{common}  ProxyJump jumpbox\n"
    )
    before = sshd_server.count_exec_channels()
    result, document = audit(
        auditor_cli,
        tmp_path,
        "--target",
        "ssh://behind-the-jump",
        "--ssh-config",
        str(config),
        "--known-hosts",
        str(sshd_server.known_hosts_path),
    )
    assert result.code in (0, 1), result.err
    assert document["targets"][0]["error"] is None
    assert sshd_server.count_exec_channels() - before == 1
    log = sshd_server.log_path.read_text()
    assert "ctype direct-tcpip" in log  # the second hop went through the first


def test_ssh_config_match_exec_still_runs_though_invoke_is_imported_on_use(sshd_server, tmp_path):
    """paramiko runs `Match exec` through invoke, which auditor imports only when needed.
    A real process: invoke reads its standard input, which pytest's capture refuses."""
    config = tmp_path / "ssh_config"
    config.write_text(
        'Match exec "test -d /"\n  HostName 127.0.0.1\n'
        f"  Port {sshd_server.port}\n  User root\n  IdentityFile {sshd_server.client_key_path}\n"
        'Match exec "false"\n  HostName 192.0.2.1\n'
    )
    report = tmp_path / "results.json"
    args = ["--target", "ssh://matched-by-exec", "--ssh-config", str(config)]
    args += ["--known-hosts", str(sshd_server.known_hosts_path), "-r", f"json:{report}"]
    done = subprocess.run(
        [sys.executable, "-m", "auditor", "run", "-q", "--no-store", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    assert json.loads(report.read_text())["targets"][0]["error"] is None
    started = subprocess.run(
        [sys.executable, "-c", "import sys, auditor.targets.ssh; print(sorted(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "'paramiko'" in started.stdout and "'invoke.collection'" not in started.stdout


def _accepts(socket_path: Path) -> bool:
    """Whether a unix socket listens: an agent binds its socket file before it listens."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(socket_path))
        except OSError:
            return False
    return True


def test_keys_from_ssh_agent(auditor_cli, sshd_server, tmp_path, monkeypatch):
    socket_path = tmp_path / "agent.sock"
    agent = start_process(
        ["ssh-agent", "-D", "-a", str(socket_path)],
        what="ssh-agent",
        log_path=tmp_path / "agent.log",
        ready=lambda: _accepts(socket_path),
        timeout=10,
    )
    try:
        env = {"SSH_AUTH_SOCK": str(socket_path), "PATH": "/usr/bin:/bin"}
        subprocess.run(
            ["ssh-add", str(sshd_server.client_key_path)],
            env=env,
            check=True,
            capture_output=True,
            timeout=10,
        )
        monkeypatch.setenv("SSH_AUTH_SOCK", str(socket_path))
        monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh keys to fall back on
        args = [a for a in sshd_server.auditor_args() if a != str(sshd_server.client_key_path)]
        args.remove("--identity")
        result, document = audit(auditor_cli, tmp_path, *args)
        assert result.code in (0, 1), result.err
        assert document["targets"][0]["error"] is None
    finally:
        stop_process(agent, timeout=10)
