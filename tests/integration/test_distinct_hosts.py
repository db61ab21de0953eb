"""Distinct Debian hosts over SSH (tests/servers/debian.py), as perf/fleet_perf.py audits them.

Three containers on the test dockerd, each with its own root filesystem, host name, host keys,
packages and sshd settings, are audited in one run through an inventory, the way the fleet
benchmark does it: each host's facts and results must be its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from servers import debian
from servers.process import require_executable, run

pytestmark = pytest.mark.integration

# PermitRootLogin prohibit-password / yes / prohibit-password, MaxAuthTries 3 / 4 / 6,
# less on host001, nano and net.ipv4.ip_forward on host018
INDICES = (0, 1, 18)


@pytest.fixture(scope="module")
def fleet(own_dockerd, tmp_path_factory) -> Iterator[tuple[list[debian.SshHost], Path]]:
    """Three varied hosts and an inventory that reaches them as root with a fresh key."""
    work = tmp_path_factory.mktemp("fleet")
    key = work / "client_ed25519"
    run([require_executable("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
    client = docker.DockerClient(base_url=own_dockerd.base_url, timeout=300)
    hosts = debian.start_hosts(
        client, [debian.varied_host(i) for i in INDICES], key.with_suffix(".pub").read_text()
    )
    try:
        known_hosts = work / "known_hosts"
        known_hosts.write_text("\n".join(debian.known_hosts_lines(client, hosts)) + "\n")
        inventory = work / "inventory.yaml"
        lines = [
            "defaults:",
            "  user: root",
            f"  key: {key}",
            f"  known_hosts: {known_hosts}",
            "  ssh_config: /dev/null",
            "hosts:",
        ]
        lines += [f"  {h.name}: {{host: 127.0.0.1, port: {h.port}}}" for h in hosts]
        inventory.write_text("\n".join(lines) + "\n")
        yield hosts, inventory
    finally:
        debian.stop_hosts(client, hosts)
        client.close()


def test_each_host_of_a_fleet_is_audited_as_itself(auditor_cli, fleet, tmp_path):
    hosts, inventory = fleet
    report = tmp_path / "results.json"
    result = auditor_cli(
        "run",
        "--quiet",
        "--no-store",
        "-i",
        str(inventory),
        "-c",
        "3",
        "--report",
        f"json:{report}",
    )
    assert result.code in (0, 1), result.err
    document = json.loads(report.read_text())
    evidence = document["evidence"]
    targets = {t["name"]: t for t in document["targets"]}
    assert sorted(targets) == sorted(h.name for h in hosts) == ["host000", "host001", "host018"]
    for index, host in zip(INDICES, hosts, strict=True):
        variant = debian.varied_host(index)
        target = targets[host.name]
        assert target["error"] is None
        assert target["url"].startswith("ssh://") and "127.0.0.1" in target["url"]
        facts = {f["name"]: f for f in target["facts"]}
        assert all(facts[n]["error"] is None for n in ("host.os", "host.sshd_config"))
        assert evidence[facts["host.os"]["sha256"]]["hostname"] == variant.hostname
        settings = evidence[facts["host.sshd_config"]["sha256"]]["settings"]
        assert settings["maxauthtries"] == variant.sshd_settings["MaxAuthTries"]
        packages = evidence[facts["host.packages"]["sha256"]]["packages"]
        assert ("less" in packages) == ("less" in variant.install_packages)
        assert ("nano" in packages) == ("nano" in variant.install_packages)
        sysctl = evidence[facts["host.sysctl"]["sha256"]]
        assert sysctl["net.ipv4.ip_forward"] == variant.sysctls["net.ipv4.ip_forward"]
        assert sysctl["kernel.hostname"] == variant.hostname
        # sshd -T spells prohibit-password without-password; the profile allows only "no"
        shown = {"yes": "yes", "prohibit-password": "without-password"}
        assert settings["permitrootlogin"] == shown[variant.sshd_settings["PermitRootLogin"]]
        assert settings["x11forwarding"] == variant.sshd_settings["X11Forwarding"]
        results = {r["check_id"]: r for r in document["results"] if r["target"] == host.name}
        assert results["host.sshd.no-root-login"]["status"] == "fail"
    # each host printed its own sshd settings: three distinct facts, not one shared
    assert len({facts_of(t, "host.sshd_config") for t in targets.values()}) == 3


def facts_of(target: dict, name: str) -> str:
    return next(f["sha256"] for f in target["facts"] if f["name"] == name)
