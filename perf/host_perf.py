"""Host audit performance: local, one SSH host, and 50 SSH targets (issue 2's targets).

Runs the real CLI end to end (`python -m auditor run ...`) against the local host and a real
sshd on 127.0.0.1 started here (tests/servers/sshd.py). Each case alternates, run by run,
with its floor, so that the ratio holds on a busy machine: for local:// the host script alone
(`sh -s` reading the probe auditor would send, all sections), for SSH `ssh USER@127.0.0.1
true` with the OpenSSH client (for the 50 targets, 25 at a time). Prints the machine and a
Markdown table for perf/RESULTS.md. Usage: python perf/host_perf.py [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from servers import sshd  # noqa: E402  (the test servers live under tests/)

from auditor.collectors.host.script import build_script, new_nonce  # noqa: E402
from auditor.collectors.host.sections import DEFAULT_PATHS, SECTIONS  # noqa: E402


def timed(args: list[str], repeat: int,
          floor: Callable[[], None] | None = None) -> tuple[float, float, str]:
    """Median and best wall time of `auditor run ARGS`, in seconds, and its median ratio to
    `floor` run just before it each time ("-" without a floor)."""
    times, ratios = [], []
    for _ in range(repeat):
        if floor is not None:
            started = time.perf_counter()
            floor()
            floor_time = time.perf_counter() - started
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "auditor", "run", "--quiet", *args],
                              capture_output=True, text=True, timeout=600, check=False)
        times.append(time.perf_counter() - started)
        if done.returncode not in (0, 1):
            raise SystemExit(f"auditor run failed ({done.returncode}): {done.stderr}")
        if floor is not None:
            ratios.append(times[-1] / floor_time)
    ratio = f"{statistics.median(ratios):.2f}" if ratios else "-"
    return statistics.median(times), min(times), ratio


def ssh_true(server: sshd.SshServer, user: str, times: int = 1) -> Callable[[], None]:
    """The floor of an SSH case: `ssh USER@127.0.0.1 true`, `times` of them 25 at a time."""
    argv = ["ssh", "-F", "/dev/null", "-i", str(server.client_key_path), "-o", "BatchMode=yes",
            "-o", f"UserKnownHostsFile={server.known_hosts_path}", "-p", str(server.port),
            f"{user}@127.0.0.1", "true"]

    def one(_: int) -> None:
        subprocess.run(argv, capture_output=True, timeout=60, check=True)

    def floor() -> None:
        with ThreadPoolExecutor(25) as pool:
            list(pool.map(one, range(times)))

    return floor


def probe_alone() -> None:
    """The floor of the local case: the host script of every section, run by `sh -s`."""
    script = build_script(SECTIONS, DEFAULT_PATHS, new_nonce())
    subprocess.run(["/bin/sh", "-s"], input=script.encode(), capture_output=True, timeout=120,
                   check=True, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"})


def machine() -> str:
    """CPU model, cores, kernel, Python and the load average."""
    model = next((line.split(":", 1)[1].strip()
                  for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown CPU")
    load = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    return (f"{model}, {len(os.sched_getaffinity(0))} cores, Linux {platform.release()}, "
            f"Python {platform.python_version()}; load average {load}")


def _box_cpu() -> tuple[float, float, float]:
    """This machine's CPU seconds so far, all cores: busy (not idle, not waiting for I/O,
    not stolen), stolen by the hypervisor for other guests, and in all."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle, iowait, steal = fields[3], fields[4], fields[7]
    return (sum(fields) - idle - iowait - steal) / tick, steal / tick, sum(fields) / tick


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat
    work = Path(tempfile.mkdtemp(prefix="auditor-perf-", dir="/tmp"))
    try:
        work.chmod(0o711)
        measure(work, repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(work: Path, repeat: int) -> None:
    """Every case beside its floor, then the table; `work` holds the reports and the sshd."""
    report = ["--report", f"json:{work / 'results.json'}"]
    rows = []
    print(f"Before: {machine()}")
    median, best, ratio = timed(["--target", "local://", *report], repeat, probe_alone)
    rows.append(("full host profile, local://", median, best, ratio, "-", "< 2 s"))
    (work / "sshd").mkdir()
    with sshd.sshd_server(work / "sshd") as server:
        # root logs in through this box's /root/.bashrc, which runs `pyenv init` (~0.3 s of
        # CPU per login); the audit account (sh, passwordless sudo) is the deployment the
        # README recommends and shows the cost of auditor itself.
        for user, extra, name in (
            (sshd.ROOT_USER, [], "root"),
            (sshd.SUDO_USER, ["--sudo"], f"{sshd.SUDO_USER} --sudo"),
        ):
            before = server.count_exec_channels()
            median, best, ratio = timed([*server.auditor_args(user), *extra, *report], repeat,
                                        ssh_true(server, user))
            # less the one channel of each floor's `ssh true`
            channels = (server.count_exec_channels() - before) / repeat - 1
            rows.append((f"full host profile, ssh:// loopback as {name}", median, best, ratio,
                         f"{channels:g} per host", "< 2 s, <= 2 channels"))
        inventory = work / "inventory.yaml"
        lines = ["defaults:", f"  user: {sshd.SUDO_USER}", "  sudo: true",
                 f"  port: {server.port}",
                 f"  key: {server.client_key_path}", f"  known_hosts: {server.known_hosts_path}",
                 "  ssh_config: /dev/null", "hosts:"]
        lines += [f"  host{i:02d}: {{host: 127.0.0.1}}" for i in range(50)]
        inventory.write_text("\n".join(lines) + "\n")
        before = server.count_exec_channels()
        box_before = _box_cpu()
        median, best, ratio = timed(
            ["--inventory", str(inventory), "--concurrency", "25", *report],
            max(1, repeat // 2), ssh_true(server, sshd.SUDO_USER, 50))
        busy, steal, total = (b - a for a, b in zip(box_before, _box_cpu(), strict=True))
        channels = (server.count_exec_channels() - before) / max(1, repeat // 2) / 50 - 1
        rows.append((f"50 ssh:// targets as {sshd.SUDO_USER} --sudo, --concurrency 25",
                     median, best, ratio,
                     f"{channels:g} per host", "< 10 s"))
    print(f"After: {machine()}\n")
    print("| case | median s | best s | ratio to floor | exec channels | target |")
    print("|---|---|---|---|---|---|")
    for name, med, low, ratio, channels, goal in rows:
        print(f"| {name} | {med:.2f} | {low:.2f} | {ratio} | {channels} | {goal} |")
    # every "host" is this machine: what the 50-target runs cost it, and what other guests took
    runs = max(1, repeat // 2)
    print(f"\n50 targets, per run: the machine busy {busy / runs:.1f} CPU-s of "
          f"{total / runs:.1f} (all cores), stolen by other guests {steal / runs:.1f} s")


if __name__ == "__main__":
    main()
