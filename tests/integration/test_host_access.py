"""The sshd, account and kernel checks on a weak and a hardened Debian host, over SSH.

Two containers of the Debian test image on the module's own dockerd (tests/servers/debian.py),
each with its own root filesystem, sshd and network namespace, made weak or hardened by the
commands of tests/servers/access_hosts.py. The weak host is audited as root, the hardened one
(PermitRootLogin no, AllowGroups sshusers) as `audit` through sudo. What each host fails or
passes was written down in access_hosts.py before the first run; the test asserts exactly that,
and that the Match blocks were judged by the hosts' own sshd (sshd -T -C).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
from servers import access_hosts, debian
from servers.process import require_executable, run

pytestmark = pytest.mark.integration

WEAK = debian.HostVariant(
    hostname="weakhost",
    commands=access_hosts.WEAK_COMMANDS,
    sysctls=access_hosts.WEAK_SYSCTLS,
)
HARDENED = debian.HostVariant(
    hostname="hardhost",
    commands=access_hosts.HARDENED_COMMANDS,
    sysctls=access_hosts.HARDENED_SYSCTLS,
)


@pytest.fixture(scope="module")
def audited(own_dockerd, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """Both hosts audited in one run; the JSON report."""
    work = tmp_path_factory.mktemp("access")
    key = work / "client_ed25519"
    run([require_executable("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
    client = docker.DockerClient(base_url=own_dockerd.base_url, timeout=300)
    hosts = debian.start_hosts(client, [WEAK, HARDENED], key.with_suffix(".pub").read_text())
    try:
        known_hosts = work / "known_hosts"
        known_hosts.write_text("\n".join(debian.known_hosts_lines(client, hosts)) + "\n")
        weak, hardened = hosts
        inventory = work / "inventory.yaml"
        inventory.write_text(
            "\n".join(
                [
                    "defaults:",
                    f"  key: {key}",
                    f"  known_hosts: {known_hosts}",
                    "  ssh_config: /dev/null",
                    "hosts:",
                    f"  weakhost: {{host: 127.0.0.1, port: {weak.port}, user: root}}",
                    f"  hardhost: {{host: 127.0.0.1, port: {hardened.port}, user: audit,"
                    " sudo: true}",
                ]
            )
            + "\n"
        )
        yield {"inventory": inventory, "work": work}
    finally:
        debian.stop_hosts(client, hosts)
        # its bridge would outlive the daemon and use up an address pool
        with contextlib.suppress(docker.errors.NotFound):
            client.networks.get(debian.NETWORK).remove()
        client.close()


@pytest.fixture(scope="module")
def report(audited) -> dict[str, Any]:
    """The audit of both hosts, run once for the module's tests (the CLI in a process of its
    own: the in-process auditor_cli fixture is per test)."""
    path: Path = audited["work"] / "results.json"
    result = subprocess.run(
        [sys.executable, "-m", "auditor", "run", "--quiet", "--no-store",
         "-i", str(audited["inventory"]), "-c", "2", "--report", f"json:{path}"],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stderr
    return json.loads(path.read_text())


def _statuses(document: dict[str, Any], host: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for result in document["results"]:
        if result["target"] == host:
            found.setdefault(result["check_id"], []).append(result["status"])
    return found


def test_both_hosts_audited_with_every_access_fact(report):
    targets = {t["name"]: t for t in report["targets"]}
    assert sorted(targets) == ["hardhost", "weakhost"]
    for target in targets.values():
        assert target["error"] is None
        facts = {f["name"]: f for f in target["facts"]}
        for name in ("sshd_config", "shadow", "login_defs", "pam", "shell_defaults",
                     "root_path", "homes", "core_dumps", "sudoers", "sysctl"):  # fmt: skip
            assert facts[f"host.{name}"]["error"] is None, (target["name"], name)


def test_weak_host_fails_what_was_planted(report):
    statuses = _statuses(report, "weakhost")
    not_failed = [c for c in access_hosts.WEAK_FAILS if "fail" not in statuses.get(c, [])]
    assert not not_failed, {c: statuses.get(c) for c in not_failed}


def test_hardened_host_passes(report):
    statuses = _statuses(report, "hardhost")
    wrong = [
        c
        for c in access_hosts.HARDENED_PASSES
        if "pass" not in statuses.get(c, []) or set(statuses[c]) - {"pass", "skip"}
    ]
    assert not wrong, {c: statuses.get(c) for c in wrong}


def test_match_blocks_judged_by_the_hosts_sshd(report):
    evidence = report["evidence"]
    by_host = {}
    for target in report["targets"]:
        fact = next(f for f in target["facts"] if f["name"] == "host.sshd_config")
        by_host[target["name"]] = evidence[fact["sha256"]]
    weak_block = by_host["weakhost"]["matches"][-1]
    assert weak_block["criteria"] == "Group legacy"
    assert weak_block["judged_by"] == "sshd -T -C"
    assert weak_block["connection"].startswith("user=olduser,")  # the group's member
    assert weak_block["effective"] == {"passwordauthentication": "yes"}
    hard_block = by_host["hardhost"]["matches"][-1]
    assert hard_block["judged_by"] == "sshd -T -C"
    assert hard_block["connection"].startswith("user=audit,")
    assert hard_block["effective"] == {"maxsessions": "2"}
    message = next(
        r["message"]
        for r in report["results"]
        if r["target"] == "weakhost" and r["check_id"] == "host.sshd.match-blocks"
    )
    assert "Match Group legacy (sshd -T -C user=olduser" in message
    assert "passwordauthentication yes" in message
