"""Hostile inputs (issue 17): outcome, wall time and peak RSS of each large or strange input of
the fuzz test (tests/fuzz/test_fuzz_inputs.py, HEAVY), each in a fresh process under the fuzz
test's address-space bound (3 GiB) and a 60 s timeout, plus a 40,000-pod manifest (no memory
bound, 900 s).

    python perf/hostile_inputs.py                        # this checkout
    python perf/hostile_inputs.py --code /path/to/other  # another checkout's auditor/ (before)

Peak RSS is the child's own ru_maxrss (wait4). Prints a Markdown table for perf/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fuzz"))

from test_fuzz_inputs import CHILD_MEMORY, CHILD_SECONDS, HEAVY, problem  # noqa: E402


def pods_manifest(directory: Path, count: int = 40_000) -> list[str]:
    """A 6 MB multi-document manifest of `count` bare pods, and the run that audits it."""
    path = directory / "pods.yaml"
    with path.open("w") as out:
        for i in range(count):
            pod = {"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": f"p{i}", "namespace": "default"},
                   "spec": {"containers": [{"name": "c", "image": "nginx"}]}}  # fmt: skip
            out.write("---\n" + json.dumps(pod) + "\n")
    report = f"json:{directory / 'out.json'}"
    return ["run", "-t", f"k8s-snapshot://{path}", "-q", "--no-store", "-r", report]


def measure(argv: list[str], code: Path, cwd: Path, seconds: float) -> tuple[str, float, float]:
    """(outcome, wall seconds, peak RSS MB) of `python -m auditor ARGV` with `code` first; the
    address space is bounded as in the fuzz test only for runs of at most CHILD_SECONDS."""

    def limit() -> None:
        if seconds <= CHILD_SECONDS:
            resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY, CHILD_MEMORY))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    env = {**os.environ, "PYTHONPATH": str(code)}
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        command = [sys.executable, "-m", "auditor", *argv]
        child = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                                 stderr=err, preexec_fn=limit)  # fmt: skip
        deadline = started + seconds
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                child.kill()
                _, status, usage = os.wait4(child.pid, 0)
                return f"hang (killed after {seconds:.0f} s)", seconds, usage.ru_maxrss / 1024
            time.sleep(0.05)
        wall = time.perf_counter() - started
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    code_ = os.waitstatus_to_exitcode(status)
    from test_fuzz_inputs import Outcome

    why = problem(Outcome(code_, stderr))
    lines = [line for line in stderr.splitlines() if line.startswith("auditor: error:")]
    outcome = why or f"exit {code_}" + (f": {lines[0][16:90]}" if lines else "")
    return outcome, wall, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout whose auditor/ runs")
    args = parser.parse_args()
    print("| input | outcome | wall | peak RSS |")  # noqa: T201
    print("|---|---|---|---|")  # noqa: T201
    cases = {**HEAVY, "manifest of 40,000 bare pods (6 MB)": pods_manifest}
    for name, make in cases.items():
        with tempfile.TemporaryDirectory() as scratch:
            work = Path(scratch)
            seconds = 900 if "40,000" in name else CHILD_SECONDS  # the large audit, unbounded
            outcome, wall, rss = measure(make(work), args.code, work, seconds)
        print(f"| {name} | {outcome} | {wall:.1f} s | {rss:.0f} MB |")  # noqa: T201


if __name__ == "__main__":
    main()
