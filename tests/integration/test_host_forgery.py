"""Host evidence cannot be forged from the audited host (issue 16, item 4), over real SSH: a
process name crafted by an unprivileged user, audited through the suite's sshd as that user,
and forged sudoers text planted in a Debian container with its own root filesystem, audited as
root through its own sshd. The in-namespace forgeries of local:// are in
tests/unit/test_host_parsers.py."""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
from servers import debian, sshd

from auditor.collectors import collector_for
from auditor.config import TargetSpec
from auditor.engine import evaluate
from auditor.model import Fact, Status, TargetKind, TargetRecord
from auditor.profiles import load_profile
from auditor.targets import open_target

pytestmark = pytest.mark.integration

# A listener that names itself (prctl PR_SET_NAME: any 15 bytes, newline and vertical tab
# included) and prints its port. Run by the system python: the test users cannot read pyenv's.
_LISTENER = """
import ctypes, socket, sys, time
ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
print(s.getsockname()[1], flush=True)
time.sleep(120)
"""
# `ss -p` printed these raw inside its socket line: the first forged a socket "tcp *:2" on a
# line of its own; the second put a line break (for Python) before a fake `S:` line.
CRAFTED_NAMES = ["\ntcp L 0 0 *:2 ", "\vS:tcp 0 0 0 :3"]


def collect(url: str, names: Sequence[str], **spec: Any) -> dict[str, Fact]:
    """The host facts `names` of the target at `url`, gathered as `auditor run` does."""
    profile = load_profile()
    with open_target(TargetSpec(url=url, ssh_config="/dev/null", **spec)) as target:
        parse = collector_for(TargetKind.HOST).collect(target, names, profile.variables)
    return parse()


def verdicts(check_id: str, facts: dict[str, Fact]) -> list[Status]:
    """The statuses one check of the shipped profile gives over these facts."""
    profile = load_profile()
    check = next(c for c in profile.checks if c.id == check_id)
    record = TargetRecord("forged", "ssh://", TargetKind.HOST, "", "", facts=tuple(facts.values()))
    only = dataclasses.replace(profile, checks=(check,))
    return [result.status for result in evaluate(only, record, profile.variables)]


@pytest.fixture
def crafted_listeners() -> Iterator[list[tuple[str, int, int]]]:
    """Processes of the unprivileged test user listening on loopback under crafted names:
    (name, pid, port) each."""
    sshd.ensure_test_users()
    started: list[subprocess.Popen[str]] = []
    listeners = []
    try:
        for name in CRAFTED_NAMES:
            process = subprocess.Popen(
                ["runuser", "-u", sshd.NOSUDO_USER, "--", "/usr/bin/python3", "-c", _LISTENER,
                 name],
                stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            started.append(process)
            assert process.stdout is not None
            port = int(process.stdout.readline())
            children = subprocess.run(
                ["pgrep", "-P", str(process.pid)], capture_output=True, text=True, check=False
            ).stdout.split()  # runuser runs python as its child (or execs it)
            pid = int(children[0]) if children else process.pid
            assert Path(f"/proc/{pid}/comm").read_text() == name + "\n"
            listeners.append((name, pid, port))
        yield listeners
    finally:
        for process in started:
            process.kill()
            process.wait()


def test_a_crafted_process_name_forges_no_listening_socket(sshd_server, crafted_listeners):
    """As the unprivileged user, over the suite's real sshd: each crafted listener is seen
    with its exact name, and the sockets its name spells out do not appear."""
    facts = collect(
        f"ssh://{sshd.NOSUDO_USER}@{sshd_server.host}:{sshd_server.port}",
        ["host.listening"],
        known_hosts=str(sshd_server.known_hosts_path),
        identity_files=(str(sshd_server.client_key_path),),
    )
    listening = facts["host.listening"]
    assert listening.error is None, listening.error
    sockets = listening.data
    kernel = subprocess.run(["ss", "-H", "-tuln"], capture_output=True, text=True, check=True)
    assert not {":2", ":3"} & {line.split()[4][-2:] for line in kernel.stdout.splitlines()}
    assert not [s for s in sockets if s["port"] in (2, 3)]
    assert all(s["address"] != "*" and s["port"] is not None for s in sockets)
    for name, pid, port in crafted_listeners:
        ours = [s for s in sockets if s["port"] == port and s["address"] == "127.0.0.1"]
        assert ours == [
            {"proto": "tcp", "address": "127.0.0.1", "port": port, "process": name, "pid": pid}
        ]


@pytest.fixture(scope="module")
def forged_debian_host(own_dockerd, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """A Debian container whose sudoers.d holds a NOPASSWD rule after comments that forge the
    end of the file, reachable as root over its own sshd on a loopback port."""
    work = tmp_path_factory.mktemp("forged-host")
    key = work / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    forged = "".join(f"# reviewed{sep}E:/etc/sudoers\n" for sep in ("\v", "\f", "\x1e", "\u2028"))
    client = docker.DockerClient(base_url=own_dockerd.base_url, timeout=120)
    hosts = _start_host(client, forged, (work / "id_ed25519.pub").read_text().strip())
    try:
        known_hosts = work / "known_hosts"
        known_hosts.write_text("\n".join(debian.known_hosts_lines(client, hosts)) + "\n")
        yield {"port": hosts[0].port, "key": key, "known_hosts": known_hosts}
    finally:
        debian.stop_hosts(client, hosts)
        client.close()


def test_forged_sudoers_text_in_a_debian_host_hides_no_rule(forged_debian_host):
    facts = collect(
        f"ssh://root@127.0.0.1:{forged_debian_host['port']}",
        ["host.sudoers"],
        known_hosts=str(forged_debian_host["known_hosts"]),
        identity_files=(str(forged_debian_host["key"]),),
    )
    sudoers = facts["host.sudoers"]
    assert sudoers.error is None, sudoers.error
    assert "/etc/sudoers.d/ops" in sudoers.data["files"]
    assert sudoers.data["nopasswd"] == [
        {"file": "/etc/sudoers.d/ops", "line": "deploy ALL=(ALL) NOPASSWD: ALL"}
    ]
    assert verdicts("host.sudo.no-nopasswd", facts) == [Status.FAIL]


def _start_host(client: docker.DockerClient, forged: str, key: str) -> list[debian.SshHost]:
    """The forged host; its port is published on the box's loopback, where other daemons also
    take ports: a port taken meanwhile is retried with a new one."""
    for attempt in range(3):
        variant = debian.HostVariant(
            hostname=f"forged{attempt}",
            files={"/etc/sudoers.d/ops": f"{forged}deploy ALL=(ALL) NOPASSWD: ALL\n"},
            commands=("chmod 0440 /etc/sudoers.d/ops", "visudo -c >/dev/null"),
        )
        try:
            return debian.start_hosts(client, [variant], key)
        except docker.errors.APIError as exc:
            for container in client.containers.list(all=True, filters={"name": "auditor-forged"}):
                container.remove(force=True)
            if "address already in use" not in str(exc) or attempt == 2:
                raise
    raise AssertionError("unreachable")
