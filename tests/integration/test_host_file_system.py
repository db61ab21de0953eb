"""File system and services checks against Debian hosts with their own root filesystems
(containers on the test dockerd, reached as root over their sshd): planted world-writable,
unowned and set-uid files, a loose /etc/crontab, a /tmp without noexec, a legacy service, no
firewall, no automatic updates, no persistent logs and no time daemon fail; a hardened host
(its own image with rsyslog, unattended-upgrades, chrony and nftables) passes; the scan's entry
budget, when hit, makes the checks that need the scan errors that say so."""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import docker
import pytest
from servers import debian

from auditor.collectors import collector_for
from auditor.config import TargetSpec
from auditor.engine import evaluate
from auditor.model import Fact, Result, Status, TargetKind, TargetRecord
from auditor.profiles import load_profile
from auditor.targets import open_target

pytestmark = pytest.mark.integration

FACTS = [
    "host.fs_scan", "host.mounts", "host.file_modes", "host.packages", "host.processes",
    "host.systemd", "host.firewall", "host.auto_updates", "host.logging",
]  # fmt: skip
CHECKS = [
    "host.fs.world-writable",
    "host.fs.unowned",
    "host.fs.ungrouped",
    "host.fs.suid-allowlist",
    "host.cron.perms",
    "host.mount.tmp",
    "host.services.no-legacy",
    "host.firewall.default-deny",
    "host.pkg.unattended-upgrades",
    "host.logging.persistent",
    "host.time.sync",
]
# What the weak host's start script plants (as root, before sshd starts).
WEAK = (
    "printf 'x=1\\n' > /etc/weak.conf && chmod 0666 /etc/weak.conf",
    "mkdir -p /usr/local/share/open && chmod 0777 /usr/local/share/open",
    "mkdir -p /usr/local/lib && touch /usr/local/lib/orphan",
    "chown 4242:4242 /usr/local/lib/orphan",
    "cp /bin/sh /usr/local/bin/rootshell && chmod 4755 /usr/local/bin/rootshell",
    "printf 'SHELL=/bin/sh\\n' > /etc/crontab && chmod 0666 /etc/crontab",
    # a world-writable file whose name spells a set-uid record after a newline
    'f=$(printf \'/etc/evil\\nR 4755 0 0 f forged\') && : > "$f" && chmod 0666 "$f"',
    # a legacy service running without its package (a copy of sleep named in.tftpd)
    "cp /bin/sleep /usr/local/sbin/in.tftpd && (/usr/local/sbin/in.tftpd 3600 &)",
)
HARDENED_PACKAGES = (
    *debian.BASE_PACKAGES, "rsyslog", "unattended-upgrades", "chrony", "nftables", "auditd", "cron",
)  # fmt: skip
HARDENED = (
    "chmod 0600 /etc/crontab",
    "printf 'APT::Periodic::Update-Package-Lists \"1\";\\n' > /etc/apt/apt.conf.d/20auto-upgrades",
    "printf 'APT::Periodic::Unattended-Upgrade \"1\";\\n' >> /etc/apt/apt.conf.d/20auto-upgrades",
    "nft add table inet filter",
    "nft 'add chain inet filter input { type filter hook input priority 0; policy drop; }'",
    "nft add rule inet filter input ct state established,related accept",
    "nft add rule inet filter input iif lo accept",
    "nft add rule inet filter input tcp dport 22 accept",
    "rsyslogd",
    "chronyd -x",  # -x: keep time without setting the clock, which a container may not
)


@pytest.fixture(scope="module")
def hosts(own_dockerd, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """A weak and a hardened Debian host; the hardened one has /tmp as a nodev,nosuid,noexec
    tmpfs and CAP_NET_ADMIN for its firewall (which root needs to read the rules, too)."""
    work = tmp_path_factory.mktemp("fs-hosts")
    key = work / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    client = docker.DockerClient(base_url=own_dockerd.base_url, timeout=120)
    variants = [
        debian.HostVariant(hostname="fsweak", commands=WEAK),
        debian.HostVariant(
            hostname="fsclean",
            commands=HARDENED,
            packages=HARDENED_PACKAGES,
            tmpfs={"/tmp": "rw,nodev,nosuid,noexec"},
            cap_add=("NET_ADMIN",),
        ),
    ]
    started = debian.start_hosts(client, variants, (work / "id_ed25519.pub").read_text().strip())
    try:
        known_hosts = work / "known_hosts"
        known_hosts.write_text("\n".join(debian.known_hosts_lines(client, started)) + "\n")
        yield {
            "weak": started[0].port,
            "clean": started[1].port,
            "key": key,
            "known_hosts": known_hosts,
        }
    finally:
        debian.stop_hosts(client, started)
        client.close()


def audit(hosts: dict[str, Any], which: str, **overrides: Any) -> dict[str, Result]:
    """The results of CHECKS on one host, with the profile's variables and `overrides`."""
    profile = load_profile()
    variables = {**profile.variables, **overrides}
    spec = TargetSpec(
        url=f"ssh://root@127.0.0.1:{hosts[which]}",
        ssh_config="/dev/null",
        known_hosts=str(hosts["known_hosts"]),
        identity_files=(str(hosts["key"]),),
    )
    with open_target(spec) as target:
        facts: Mapping[str, Fact] = collector_for(TargetKind.HOST).collect(
            target, FACTS, variables
        )()
    record = TargetRecord(which, "ssh://", TargetKind.HOST, "", "", facts=tuple(facts.values()))
    checks = tuple(c for c in profile.checks if c.id in CHECKS)
    results = evaluate(dataclasses.replace(profile, checks=checks), record, variables)
    by_check: dict[str, list[Result]] = {}
    for result in results:
        by_check.setdefault(result.check_id, []).append(result)
    # the per-file check (cron.perms) has one subject per path: keep the one it judged
    return {cid: _judged(rs) for cid, rs in by_check.items()}


def _judged(results: Sequence[Result]) -> Result:
    judged = [r for r in results if r.status != Status.SKIP]
    assert len(judged) == 1, [(r.subject.name, r.status) for r in results]
    return judged[0]


def test_planted_weaknesses_fail(hosts):
    results = audit(hosts, "weak")
    assert {cid: r.status for cid, r in results.items()} == dict.fromkeys(CHECKS, Status.FAIL)
    writable = results["host.fs.world-writable"].message
    assert "/etc/weak.conf (file 0666)" in writable
    assert "/usr/local/share/open (directory 0777)" in writable
    assert "/etc/<a name holding a newline, inode " in writable
    assert "forged" not in results["host.fs.suid-allowlist"].message
    assert "/usr/local/lib/orphan (uid 4242)" in results["host.fs.unowned"].message
    assert "/usr/local/lib/orphan (gid 4242)" in results["host.fs.ungrouped"].message
    suid = results["host.fs.suid-allowlist"].message
    assert "/usr/local/bin/rootshell (4755, uid 0)" in suid
    assert suid.count("(4") == 1, "only the planted program is outside the allow-list"
    assert "mode 0666" in results["host.cron.perms"].message
    assert "/tmp is not a separate mount" in results["host.mount.tmp"].message
    assert "running in.tftpd" in results["host.services.no-legacy"].message


def test_a_hardened_host_passes(hosts):
    results = audit(hosts, "clean")
    assert {cid: r.status for cid, r in results.items()} == dict.fromkeys(CHECKS, Status.PASS)


def test_the_entry_budget_makes_the_scan_checks_errors(hosts):
    results = audit(hosts, "weak", fs_scan_max_entries=50)
    scan_checks = [c for c in CHECKS if c.startswith("host.fs.")]
    for cid in scan_checks:
        assert results[cid].status == Status.ERROR, (cid, results[cid].status)
        assert "stopped by its entry budget (50 entries" in (results[cid].message or ""), cid
    # checks that do not need the scan are judged as before
    assert results["host.cron.perms"].status == Status.FAIL
    assert results["host.time.sync"].status == Status.FAIL


def test_a_local_scan_leaves_out_a_running_dockerds_data_root(own_dockerd, hosts):
    """The test dockerd (holding the Debian image's layers, set-uid files included) runs as
    root with its own --data-root: a local:// scan prunes it and reports so."""
    profile = load_profile()
    variables = {**profile.variables, "fs_scan_max_seconds": 50}
    with open_target(TargetSpec(url="local://")) as target:
        facts = collector_for(TargetKind.HOST).collect(target, ["host.fs_scan"], variables)()
    scan = facts["host.fs_scan"]
    assert scan.error is None, scan.error
    data_root = str(own_dockerd.data_root)
    assert data_root in scan.data["pruned"]
    lists = ("world_writable", "unowned", "ungrouped", "setuid", "setgid")
    found = [e["path"] for key in lists for e in scan.data[key]]
    assert not [path for path in found if path.startswith(data_root + "/")]
    assert "/usr/bin/su" in [e["path"] for e in scan.data["setuid"]]
