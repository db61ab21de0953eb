"""SSH faults against a real OpenSSH sshd (tests/servers/sshd.py): ForceCommand variants stand
in for a host that drops the connection mid-output or prints without end, a proxy for a slow
banner; a long-running command must be stopped on the host when auditor gives up on it."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from local_bundle import auditor
from servers import sshd

from auditor.config import TargetSpec
from auditor.errors import TargetError
from auditor.targets.local import LocalTarget
from auditor.targets.ssh import SshTarget

pytestmark = pytest.mark.integration

# Reads the script auditor sends, prints 300 kB, then SIGKILLs the sshd process that serves
# this session: what a crashed host or a cut link looks like from the client.
DROP = r"""#!/bin/sh
cat >/dev/null
head -c 300000 /dev/zero | tr '\0' x
sleep 0.2
p=$PPID
while [ "$(cat /proc/$p/comm)" != sshd ]; do p=$(cut -d' ' -f4 /proc/$p/stat); done
kill -9 "$p"
sleep 5
"""


def flood(section: str, size: int) -> str:
    """auditor's own host script, run as sent, with `size` bytes printed at the start of
    section `section`: a host whose file or command output has no end."""
    return (
        "#!/bin/sh\n"
        f"sed '/^__section_{section}() {{$/a\\\n"
        f"yes auditor-flood-line | head -c {size}' | /bin/sh -s\n"
    )


@contextmanager
def forced(servers_dir: Path, command: str) -> Iterator[sshd.SshServer]:
    """A second sshd whose every session runs `command` (a script) instead of auditor's."""
    workdir = servers_dir / f"sshd-forced-{uuid.uuid4().hex[:8]}"
    workdir.mkdir()
    script = workdir / "force.sh"
    script.write_text(command)
    script.chmod(0o755)
    with sshd.sshd_server(workdir, extra_config=[f"ForceCommand {script}"]) as server:
        yield server


def spec_for(server: sshd.SshServer, user: str = sshd.ROOT_USER, **changes) -> TargetSpec:
    return TargetSpec(
        url=f"ssh://{user}@{server.host}:{server.port}",
        known_hosts=str(server.known_hosts_path),
        identity_files=(str(server.client_key_path),),
        ssh_config="/dev/null",
        **changes,
    )


def run_cli(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict, float]:
    """`auditor run` in a process of its own: its stderr is what a user would see."""
    report = tmp_path / f"results-{uuid.uuid4().hex[:6]}.json"
    started = time.monotonic()
    done = auditor("run", "-q", "--no-store", "--report", f"json:{report}", *args, cwd=tmp_path)
    took = time.monotonic() - started
    return done, json.loads(report.read_text()) if report.exists() else {}, took


def test_a_connection_dropped_mid_output_is_reported_as_such_at_once(servers_dir, tmp_path):
    with forced(servers_dir, DROP) as server:
        with SshTarget(spec_for(server)) as target:
            started = time.monotonic()
            with pytest.raises(TargetError) as caught:
                target.run_script("echo hello\n", timeout=60)
            took = time.monotonic() - started
        assert took < 3  # not the 60 s command timeout
        assert "dropped" in str(caught.value) and "300000 bytes" in str(caught.value)

        done, document, _ = run_cli(tmp_path, *server.auditor_args())
    assert done.returncode == 3, done.stderr
    error = document["targets"][0]["error"]
    assert "connection" in error and "dropped" in error and "did not finish" not in error
    assert "Traceback" not in done.stderr and "paramiko" not in done.stderr


def test_a_slow_banner_is_a_clear_timeout_and_paramiko_stays_quiet(sshd_server, tmp_path):
    with sshd.trickling_proxy(sshd.TcpEndpoint(sshd_server.host, sshd_server.port), 30) as proxy:
        known_hosts = tmp_path / "known_hosts"
        key = " ".join(sshd_server.host_public_key_line.split()[:2])
        known_hosts.write_text(f"[{proxy.host}]:{proxy.port} {key}\n")
        done, document, took = run_cli(
            tmp_path,
            "--target", f"ssh://root@{proxy.host}:{proxy.port}",
            "--known-hosts", str(known_hosts),
            "--identity", str(sshd_server.client_key_path),
            "--ssh-config", "/dev/null",
            "--connect-timeout", "2",
        )  # fmt: skip
    assert done.returncode == 3, done.stderr
    error = document["targets"][0]["error"]
    assert "within 2s" in error and ("banner" in error or "handshake" in error), error
    assert "No existing session" not in error
    assert took < 20  # the interpreter start on a busy machine included; not the 30 s stall
    # only auditor's own line: no traceback or log line of paramiko's transport thread
    assert done.stderr.strip().splitlines() == [
        f"auditor: ssh://root@{proxy.host}:{proxy.port}: {error}"
    ]


def remote_process_gone(pattern: str, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if subprocess.run(["pgrep", "-f", pattern], capture_output=True).returncode == 1:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("user", [sshd.ROOT_USER, sshd.SUDO_USER])
def test_a_command_given_up_on_is_stopped_on_the_host(sshd_server, user):
    mark = f"{3000 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 10**6}"  # a unique sleep
    spec = spec_for(sshd_server, user, sudo=user != sshd.ROOT_USER)
    with SshTarget(spec) as target:
        started = time.monotonic()
        with pytest.raises(TargetError, match=r"did not finish within 1\.5s"):
            target.run_script(f"sleep {mark} & sleep {mark}\necho never\n", timeout=1.5)
        assert time.monotonic() - started < 5
        # the sshd session is still open (the target is), and the script's processes are gone
        assert remote_process_gone(f"sleep {mark}")


def test_a_local_command_given_up_on_is_stopped_with_its_children():
    mark = f"{3000 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 10**6}"
    target = LocalTarget(TargetSpec(url="local://"))
    with pytest.raises(TargetError, match=r"did not finish within 1\.5s"):
        target.run_script(f"sleep {mark} & sleep {mark}\n", timeout=1.5)
    assert remote_process_gone(f"sleep {mark}", within=3)


def test_output_past_the_cap_stops_the_script_and_names_the_section(servers_dir, tmp_path):
    with forced(servers_dir, flood("sysctl", 200 * 1024**2)) as server:
        done, document, took = run_cli(tmp_path, *server.auditor_args(), "--max-host-output", "4")
    assert done.returncode in (0, 1), done.stderr
    target = document["targets"][0]
    assert target["error"] is None  # the sections read before the cap are audited
    facts = {fact["name"]: fact for fact in target["facts"]}
    assert facts["host.os"]["error"] is None
    assert (
        "passed the 4 MiB cap on host output (--max-host-output)" in facts["host.sysctl"]["error"]
    )
    assert "stopped here" in facts["host.sysctl"]["error"]
    assert "in section sysctl" in facts["host.mounts"]["error"]
    assert took < 30
    assert remote_process_gone("auditor-flood-line")


def test_local_output_past_the_cap_is_cut_there():
    target = LocalTarget(TargetSpec(url="local://", max_output=1024**2))
    result = target.run_script("yes auditor-local-flood | head -c 50000000\n", timeout=30)
    assert result.cut_at == 1024**2
    assert len(result.stdout) + len(result.stderr) == 1024**2
    assert remote_process_gone("auditor-local-flood", within=3)


def known_hosts_with(server: sshd.SshServer, path: Path, *lines: str) -> Path:
    key = " ".join(server.host_public_key_line.split()[:2])
    path.write_text("".join(line.format(key=key, host=f"[{server.host}]:{server.port}") + "\n"
                            for line in lines))  # fmt: skip
    return path


def test_a_revoked_host_key_is_refused_even_when_also_listed(sshd_server, tmp_path):
    known_hosts = known_hosts_with(
        sshd_server, tmp_path / "known_hosts", "@revoked * {key}", "{host} {key}"
    )
    done, document, _ = run_cli(
        tmp_path, *sshd_server.auditor_args(), "--known-hosts", str(known_hosts),
        "--accept-new-host-keys",
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    error = document["targets"][0]["error"]
    assert "@revoked" in error and str(known_hosts) in error and "refusing" in error
    assert "internal error" not in done.stderr


def test_a_cert_authority_line_is_ignored_with_a_warning(sshd_server, tmp_path):
    other = sshd_server.host_key_path.with_name("other_host_ed25519_key.pub").read_text()
    known_hosts = known_hosts_with(
        sshd_server,
        tmp_path / "known_hosts",
        "@cert-authority *.example.com " + " ".join(other.split()[:2]),
        "{host} {key}",
    )
    done, document, _ = run_cli(
        tmp_path, *sshd_server.auditor_args(), "--known-hosts", str(known_hosts)
    )
    assert done.returncode in (0, 1), done.stderr
    assert document["targets"][0]["error"] is None
    assert done.stderr.count("@cert-authority line ignored") == 1
    assert f"{known_hosts}:1" in done.stderr
