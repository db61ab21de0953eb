"""Peak memory of `auditor run` against an SSH host whose script prints without end.

A real sshd on 127.0.0.1 (tests/servers/sshd.py) runs auditor's own host script through a
ForceCommand that injects SIZE bytes at the start of one section (a file or a command whose
output has no end). `/usr/bin/time -v` measures the auditing process: its peak RSS, wall
and CPU time. `--code DIR` audits with the auditor package of another checkout (the code
before a change), `--flag ...` passes more flags to `auditor run`.

    python perf/host_output_perf.py --size 500000000
    python perf/host_output_perf.py --size 500000000 --code /path/to/older/checkout
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from servers import sshd  # noqa: E402  (the test servers live under tests/)


def flood(section: str, size: int) -> str:
    return (
        "#!/bin/sh\n"
        f"sed '/^__section_{section}() {{$/a\\\n"
        f"yes auditor-flood-line | head -c {size}' | /bin/sh -s\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=500_000_000, help="bytes to print")
    parser.add_argument("--section", default="sysctl")
    parser.add_argument("--code", default=str(ROOT), help="checkout whose auditor is run")
    parser.add_argument("--flag", action="append", default=[], help="more `auditor run` flags")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="auditor-perf-", dir="/tmp") as directory:
        workdir = Path(directory)
        workdir.chmod(0o711)
        script = workdir / "force.sh"
        script.write_text(flood(args.section, args.size))
        script.chmod(0o755)
        (workdir / "sshd").mkdir()
        with sshd.sshd_server(workdir / "sshd", extra_config=[f"ForceCommand {script}"]) as server:
            report = workdir / "results.json"
            argv = [
                "/usr/bin/time", "-v", sys.executable, "-m", "auditor", "run", "-q",
                "--no-store", "--report", f"json:{report}", "--command-timeout", "600",
                *server.auditor_args(), *args.flag,
            ]  # fmt: skip
            env = {**os.environ, "PYTHONPATH": args.code}
            done = subprocess.run(argv, capture_output=True, text=True, cwd="/tmp", env=env)
            document = json.loads(report.read_text()) if report.exists() else None
    measures = dict(
        line.strip().rsplit(": ", 1) for line in done.stderr.splitlines() if ": " in line
    )
    print(
        f"code {args.code}: {args.size} bytes in section {args.section}: exit "
        f"{measures.get('Exit status')}, peak RSS "
        f"{int(measures['Maximum resident set size (kbytes)']) / 1024:.0f} MiB, wall "
        f"{measures['Elapsed (wall clock) time (h:mm:ss or m:ss)']}, CPU "
        f"{float(measures['User time (seconds)']) + float(measures['System time (seconds)']):.1f} s"
    )
    for line in done.stderr.splitlines():
        if line.startswith("auditor:"):
            print("  " + line[:300])
    if document is not None:
        target = document["targets"][0]
        facts = {fact["name"]: fact["error"] for fact in target["facts"]}
        print(f"  target error: {target['error']}")
        print(f"  host.{args.section}: {facts.get(f'host.{args.section}')}")


if __name__ == "__main__":
    main()
