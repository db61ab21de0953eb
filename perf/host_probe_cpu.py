"""CPU time of the host probe itself: the whole host script run N times with /bin/sh as
`local://` runs it, its children's user + system time per run, and its output size.

Usage: python perf/host_probe_cpu.py [--repeat N] [--sections a,b] [--quiet-host]
[--enter PID]. With --quiet-host (root) the script runs in new PID and network namespaces, so
that the processes and sockets of everything else on a shared box do not count; with --enter
(root) it runs in the namespaces of process PID (a container's, with its own root filesystem
and mounts) and still as a child of this process, so its CPU time is counted. The elapsed time
is printed too: the file system scan waits on the disk more than it computes. To compare two versions, run it
alternately with PYTHONPATH set to each tree (perf/RESULTS.md shows how it was done).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import time

from auditor.collectors.host.script import ScanBudget, build_script
from auditor.collectors.host.sections import DEFAULT_PATHS, SECTIONS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--sections", help="comma-separated section names (default: all)")
    parser.add_argument("--quiet-host", action="store_true", help="own PID and net namespaces")
    parser.add_argument("--enter", type=int, help="run in the namespaces of this process")
    parser.add_argument("--scan-seconds", type=int, default=ScanBudget.seconds)
    args = parser.parse_args()
    wanted = args.sections.split(",") if args.sections else [s.name for s in SECTIONS]
    print(measure(wanted, args.repeat, args.quiet_host, args.enter, args.scan_seconds))


def measure(
    wanted: list[str], repeat: int, quiet_host: bool, enter: int | None, scan_seconds: int
) -> str:
    """One line: CPU and elapsed time per run of the script made of the sections `wanted`."""
    shell = ["/bin/sh", "-s"]
    if quiet_host:
        shell = ["unshare", "--pid", "--fork", "--mount-proc", "--net", *shell]
    if enter is not None:
        shell = ["nsenter", "-t", str(enter), "-m", "-u", "-i", "-n", "-p", *shell]
    sections = [s for s in SECTIONS if s.name in wanted]
    budget = ScanBudget(scan_seconds, ScanBudget.entries)
    script = build_script(sections, DEFAULT_PATHS, "perf", scan_budget=budget)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
    cpu = []
    wall = []
    size = 0
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(
            shell, input=script.encode(), capture_output=True, env=env, check=True
        )
        wall.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        size = len(done.stdout)
    where = (
        ", quiet host" if quiet_host else (f", in the namespaces of pid {enter}" if enter else "")
    )
    names = ",".join(wanted) if len(sections) < len(SECTIONS) else "all sections"
    return (
        f"{names}: CPU per run median {statistics.median(cpu) * 1000:.0f} ms, best "
        f"{min(cpu) * 1000:.0f} ms; elapsed median {statistics.median(wall) * 1000:.0f} ms "
        f"({repeat} runs{where}), output {size / 1024:.0f} KiB"
    )


if __name__ == "__main__":
    main()
