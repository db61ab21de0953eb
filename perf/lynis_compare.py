"""Lynis and auditor on the same two lab hosts: a weak and a hardened Debian 12 (issue 18).

Starts a private dockerd (tests/servers/dockerd.py) and the two hosts of
tests/servers/host_labs.py (each its own root filesystem, Lynis installed from Debian's
package). On each host, one after the other:

- auditor: `auditor run -p nist-800-190` over SSH (as `audit` with sudo), in a subprocess;
- Lynis: `lynis audit system --quick --no-colors` inside the container (docker exec), its
  warnings and suggestions read from /var/log/lynis-report.dat.

Then prints, with the machine and date, in Markdown for perf/RESULTS.md:
- findings and wall time per host for both tools;
- every Lynis warning/suggestion, the area it belongs to and, where auditor covers that area,
  whether auditor reports the same weakness on that host (a failing check of LYNIS_MAP);
- recall and precision of auditor against tests/data/hosts/labels.yaml (written before any
  run), and Lynis's recall against the same labels through LYNIS_MAP.

Usage: python perf/lynis_compare.py [--json OUT]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from servers import debian, dockerd, host_labs  # noqa: E402  (the test servers live under tests/)

LABELS = yaml.safe_load((ROOT / "tests" / "data" / "hosts" / "labels.yaml").read_text())


@dataclass(frozen=True)
class LynisRule:
    """Lynis findings of one test id (and detail pattern): their area and the auditor checks
    that judge the same thing (empty: auditor has no check for it)."""

    test: str
    pattern: str  # a regular expression searched in the finding's text and detail
    area: str  # an area of labels.yaml, or "outside" for areas auditor does not cover
    checks: tuple[str, ...] = ()


_SSH = "SSH-7408"
LYNIS_MAP: tuple[LynisRule, ...] = (
    LynisRule(_SSH, r"^PermitRootLogin", "sshd", ("host.sshd.no-root-login",)),
    LynisRule(_SSH, r"^X11Forwarding", "sshd", ("host.sshd.x11-forwarding",)),
    LynisRule(_SSH, r"^MaxAuthTries", "sshd", ("host.sshd.max-auth-tries",)),
    LynisRule(_SSH, r"^PermitUserEnvironment", "sshd", ("host.sshd.permit-user-environment",)),
    LynisRule(_SSH, r"^AllowTcpForwarding", "sshd", ("host.sshd.tcp-forwarding",)),
    LynisRule(_SSH, r"^AllowAgentForwarding", "sshd", ("host.sshd.agent-forwarding",)),
    LynisRule(_SSH, r"^LogLevel", "sshd", ("host.sshd.log-level",)),
    LynisRule(_SSH, r"^ClientAlive", "sshd", ("host.sshd.client-alive",)),
    LynisRule(_SSH, r"^MaxSessions", "sshd", ("host.sshd.max-sessions",)),
    LynisRule(_SSH, r"^(Compression|TCPKeepAlive|Port) ", "sshd"),
    LynisRule("BANN-7130", "", "sshd", ("host.sshd.banner",)),
    LynisRule("BANN-7126", "", "outside"),  # /etc/issue: local console logins
    LynisRule("AUTH-9204", "", "accounts", ("host.accounts.uid0-only-root",)),
    LynisRule("AUTH-9208", "", "accounts", ("host.accounts.unique-uids",)),
    LynisRule("AUTH-9283", "", "accounts", ("host.accounts.no-empty-passwords",)),
    LynisRule("AUTH-9286", "maximum", "accounts", ("host.login-defs.pass-max-days",)),
    LynisRule("AUTH-9286", "minimum", "accounts", ("host.login-defs.pass-min-days",)),
    LynisRule("AUTH-9328", "", "accounts", ("host.login-defs.umask",)),
    LynisRule("AUTH-9230", "", "accounts", ("host.login-defs.encrypt-method",)),
    LynisRule("AUTH-9262", "", "accounts", ("host.pam.pwquality",)),
    LynisRule("AUTH-9284", "", "accounts"),
    LynisRule("HOME-9304", "", "accounts", ("host.accounts.home-dirs",)),
    LynisRule(
        "KRNL-6000",
        "",
        "kernel-network",
        (
            "host.sysctl.accept-redirects",
            "host.sysctl.send-redirects",
            "host.sysctl.source-route",
            "host.sysctl.log-martians",
            "host.sysctl.rp-filter",
            "host.sysctl.kptr-restrict",
            "host.sysctl.protected-links",
        ),
    ),
    LynisRule("KRNL-5820", "", "kernel-network", ("host.limits.core-dumps",)),
    LynisRule("FILE-6310", "/tmp", "filesystem", ("host.mount.tmp",)),
    LynisRule("FILE-6310", "/home", "filesystem", ("host.mount.home-separate",)),
    LynisRule("FILE-6310", "/var", "filesystem", ("host.mount.var-separate",)),
    LynisRule("FILE-7524", r"^/etc/crontab ", "filesystem", ("host.cron.perms",)),
    LynisRule("FILE-7524", r"^/etc/cron\.", "filesystem", ("host.cron.dirs-perms",)),
    LynisRule(
        "FILE-7524", r"^/etc/(passwd|group|g?shadow) ", "filesystem", ("host.files.identity-perms",)
    ),
    LynisRule(
        "FILE-7524",
        r"^/etc/(passwd|group|g?shadow)- ",
        "filesystem",
        ("host.files.identity-backup-perms",),
    ),
    LynisRule("FILE-7524", r"^/etc/ssh/sshd_config ", "sshd", ("host.sshd.config-perms",)),
    LynisRule("FILE-7524", r"^/etc/issue", "filesystem", ("host.files.banner-perms",)),
    LynisRule("FILE-7524", "", "filesystem"),
    LynisRule("SCHD-7704", "", "filesystem", ("host.cron.perms",)),
    LynisRule("INSE-", "", "services", ("host.services.no-legacy",)),
    LynisRule("FIRE-", "", "firewall", ("host.firewall.default-deny",)),
    LynisRule("PKGS-7420", "", "updates", ("host.pkg.unattended-upgrades",)),
    LynisRule("PKGS-7388", "", "updates"),  # no security repository in the lab mirror list
    LynisRule("LOGG-2154", "", "logging", ("host.logging.forwarded",)),
    LynisRule("LOGG-", "", "logging", ("host.logging.persistent",)),
    LynisRule("TIME-", "", "time", ("host.time.sync",)),
    LynisRule("FINT-4402", "", "integrity"),  # AIDE's checksum choice
    LynisRule("FINT-", "", "integrity", ("host.fim.enabled",)),
    LynisRule("ACCT-9628", "", "audit", ("host.auditd.enabled",)),
)


def lynis_rule(finding: dict[str, str]) -> LynisRule | None:
    """The rule of a finding; patterns are searched in its detail (SSH-7408 names the
    keyword there) and in its text."""
    for rule in LYNIS_MAP:
        if finding["test"].startswith(rule.test) and any(
            re.search(rule.pattern, finding[part]) for part in ("detail", "text")
        ):
            return rule
    return None


def machine() -> str:
    cpus = os.cpu_count()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"{now}; {model}, {cpus} cores, load {load}; kernel {platform.release()}"


def audit(host: debian.SshHost, key: Path, known_hosts: Path, work: Path) -> tuple[float, dict]:
    """auditor on one host, in a subprocess as a user runs it: wall time and its results."""
    inventory = work / f"{host.name}.yaml"
    inventory.write_text(yaml.safe_dump(host_labs.inventory([host], key, known_hosts)))
    report = work / f"{host.name}.json"
    started = time.monotonic()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "auditor",
            "run",
            "--quiet",
            "--no-store",
            "-p",
            "nist-800-190",
            "-i",
            str(inventory),
            "--report",
            f"json:{report}",
        ],
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=600,
    )
    elapsed = time.monotonic() - started
    document = json.loads(report.read_text())
    (target,) = document["targets"]
    if target["error"]:
        raise SystemExit(f"auditor could not audit {host.name}: {target['error']}")
    statuses: dict[str, str] = {}
    for result in document["results"]:
        if result["target"] == host.name:
            before = statuses.get(result["check_id"], "")
            order = ("fail", "error", "pass", "skip", "")
            statuses[result["check_id"]] = min(before, result["status"], key=order.index)
    return elapsed, statuses


def lynis(client: docker.DockerClient, host: debian.SshHost) -> tuple[float, list[dict]]:
    """Lynis inside the host's container: wall time and its warnings and suggestions."""
    container = client.containers.get(host.container_id)
    started = time.monotonic()
    code, output = container.exec_run(["lynis", "audit", "system", "--quick", "--no-colors"])
    elapsed = time.monotonic() - started
    if code != 0:
        raise SystemExit(f"lynis failed on {host.name}: {output[-2000:]!r}")
    code, report = container.exec_run(["cat", "/var/log/lynis-report.dat"])
    findings = []
    for line in report.decode().splitlines():
        kind, _, value = line.partition("[]=")
        if kind in ("warning", "suggestion"):
            test, text, detail, *_ = (value.split("|") + ["", ""])[:4]
            finding = {"kind": kind, "test": test, "text": text, "detail": detail}
            if test == "FILE-7524":  # "see the log": one finding per file the log names
                code, log = container.exec_run(["cat", "/var/log/lynis.log"])
                paths = badly_permitted(log.decode(errors="replace"))
                findings += [{**finding, "detail": f"{path} permissions"} for path in paths]
            else:
                findings.append(finding)
    return elapsed, findings


def badly_permitted(log: str) -> list[str]:
    """The files FILE-7524 found with looser permissions than its profile, from lynis.log."""
    paths, current = [], ""
    for line in log.splitlines():
        if match := re.search(r"Test: checking if (?:file|directory) (\S+) has", line):
            current = match.group(1)
        elif "Outcome:" in line and "correct" not in line and current:
            paths.append(current)
            current = ""
    return paths


def detected(statuses: dict[str, str], checks: Sequence[str]) -> bool:
    return bool(checks) and all(statuses.get(c) == "fail" for c in checks)


def compare(hosts: dict[str, dict[str, Any]]) -> list[str]:
    """The Markdown report: per host side by side, Lynis findings against auditor, recall."""
    out = ["| host | tool | findings | wall time (s) |", "|---|---|---:|---:|"]
    for name, host in hosts.items():
        fails = sum(1 for s in host["auditor"].values() if s == "fail")
        out.append(
            f"| {name} | auditor (failing host checks) | {fails} | {host['auditor_s']:.1f} |"
        )
        out.append(
            f"| {name} | Lynis (warnings + suggestions) | {len(host['lynis'])} "
            f"| {host['lynis_s']:.1f} |"
        )
    profile_checks = set().union(*(h["auditor"] for h in hosts.values()))
    for name, host in hosts.items():
        out += [
            "",
            f"Lynis findings on **{name}** in areas auditor covers, and auditor's verdict on"
            " the same host:",
            "",
            "| Lynis test | finding | area | auditor |",
            "|---|---|---|---|",
        ]
        outside = []
        for f in host["lynis"]:
            rule = lynis_rule(f)
            if rule is None or rule.area == "outside":
                outside.append(f["test"])
                continue
            text = (f["detail"] if f["detail"] not in ("", "-") else f["text"])[:70]
            judged = verdict(rule, host["auditor"], profile_checks)
            out.append(f"| {f['test']} | {text.replace('|', '/')} | {rule.area} | {judged} |")
        out += ["", f"Outside auditor's areas ({len(outside)}): {', '.join(outside)}"]
    out += ["", *recall(hosts)]
    return out


def verdict(rule: LynisRule, statuses: dict[str, str], profile_checks: set[str]) -> str:
    """Whether auditor reports what a Lynis finding reports, on the same host."""
    known = [c for c in rule.checks if c in profile_checks]
    if not known:
        missing = f" ({', '.join(rule.checks)} not in the profile)" if rule.checks else ""
        return "area covered, no check for it" + missing
    failing = [c for c in known if statuses.get(c) == "fail"]
    if failing:
        return f"reported too ({', '.join(failing)})"
    return "NOT reported (" + ", ".join(f"{c}: {statuses.get(c)}" for c in known) + ")"


def recall(hosts: dict[str, dict[str, Any]]) -> list[str]:
    """Recall and precision of auditor against the labels; Lynis's recall through LYNIS_MAP.

    Only labelled verdicts have a ground truth: a fail of a check a weakness names on the weak
    host is a true positive, a fail of a check labelled to pass (weak.pass, hardened.pass) a
    false positive. Failing checks without a label are counted apart: they are neither."""
    weaknesses = LABELS["weak"]["weaknesses"]
    weak = hosts["weak"]["auditor"]
    found = [w for w in weaknesses if detected(weak, w["checks"])]
    failing = {c for w in weaknesses for c in w["checks"]}
    expected_pass = {
        "weak": set(LABELS["weak"]["pass"]),
        "hardened": set(LABELS["hardened"]["pass"]),
    }
    true = {c for c in failing if weak.get(c) == "fail"}
    false = [
        f"{c} ({h})"
        for h, passing in expected_pass.items()
        for c in sorted(passing)
        if hosts[h]["auditor"].get(c) == "fail"
    ]
    labelled = failing | expected_pass["hardened"] | set(LABELS["machine_decided"])
    unlabelled = {
        h: sorted(c for c, s in hosts[h]["auditor"].items() if s == "fail" and c not in labelled)
        for h in ("weak", "hardened")
    }
    lynis_checks = {
        c for f in hosts["weak"]["lynis"] if (rule := lynis_rule(f)) for c in rule.checks
    }
    lynis_found = [w for w in weaknesses if set(w["checks"]) & lynis_checks]
    missed = [w["id"] for w in weaknesses if w not in found]
    precision = len(true) / max(1, len(true) + len(false))
    lines = [
        f"- auditor recall on the weak host: {len(found)}/{len(weaknesses)} labelled weaknesses "
        f"({len(found) / len(weaknesses):.0%}); missed: {', '.join(missed) or 'none'}",
        f"- auditor precision on the labelled checks (both hosts): {len(true)}/"
        f"{len(true) + len(false)} ({precision:.0%}); labelled to pass but failing: "
        f"{', '.join(false) or 'none'}",
        f"- Lynis recall on the same labels (a finding mapped to a check of the weakness): "
        f"{len(lynis_found)}/{len(weaknesses)} ({len(lynis_found) / len(weaknesses):.0%})",
    ]
    for h, checks in unlabelled.items():
        lines.append(
            f"- failing checks without a label on {h} ({len(checks)}): "
            f"{', '.join(checks) or 'none'}"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="lynis-compare-") as tmp:
        work = Path(tmp)
        (work / "dockerd").mkdir()
        with dockerd.dockerd_server(work / "dockerd") as daemon:
            client = docker.DockerClient(base_url=daemon.base_url, timeout=600)
            with contextlib.closing(client), host_labs.started(client, work) as labs:
                started, key, known_hosts = labs
                hosts: dict[str, dict[str, Any]] = {}
                for host in started:
                    auditor_s, statuses = audit(host, key, known_hosts, work)
                    lynis_s, findings = lynis(client, host)
                    hosts[host.name] = {
                        "auditor_s": auditor_s,
                        "auditor": statuses,
                        "lynis_s": lynis_s,
                        "lynis": findings,
                    }
    print(f"Machine: {machine()}\n")
    print("\n".join(compare(hosts)))
    if args.json:
        args.json.write_text(json.dumps(hosts, indent=1))


if __name__ == "__main__":
    main()
