"""CPU time of the host probe itself: the whole host script run N times with /bin/sh as
`local://` runs it, its children's user + system time per run, and its output size.

Usage: python perf/host_probe_cpu.py [--repeat N] [--sections a,b] [--quiet-host]. With
--quiet-host (root) the script runs in new PID and network namespaces, so that the processes and
sockets of everything else on a shared box do not count. To compare two versions, run it
alternately with PYTHONPATH set to each tree (perf/RESULTS.md shows how it was done).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess

from auditor.collectors.host.script import build_script
from auditor.collectors.host.sections import DEFAULT_PATHS, SECTIONS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--sections", help="comma-separated section names (default: all)")
    parser.add_argument("--quiet-host", action="store_true", help="own PID and net namespaces")
    args = parser.parse_args()
    shell = ["/bin/sh", "-s"]
    if args.quiet_host:
        shell = ["unshare", "--pid", "--fork", "--mount-proc", "--net", *shell]
    wanted = args.sections.split(",") if args.sections else [s.name for s in SECTIONS]
    script = build_script([s for s in SECTIONS if s.name in wanted], DEFAULT_PATHS, "perf")
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
    cpu = []
    size = 0
    for _ in range(args.repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(
            shell, input=script.encode(), capture_output=True, env=env, check=True
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        size = len(done.stdout)
    print(
        f"{','.join(wanted) if args.sections else 'all sections'}: CPU per run median "
        f"{statistics.median(cpu) * 1000:.0f} ms, best {min(cpu) * 1000:.0f} ms "
        f"({args.repeat} runs{', quiet host' if args.quiet_host else ''}), "
        f"output {size / 1024:.0f} KiB"
    )


if __name__ == "__main__":
    main()
