"""Evidence quality: how many failing results show a summary or nothing as their observed value.

Runs the CLI (`auditor run ... --no-store -r json:FILE`) of the code at `--code` (a checkout;
default: this one) over three targets and counts, per target, the failing results whose
`observed` is empty or holds a summary string ("<map of 89 items>", "<list of 3 items>") in
place of a value that was read:

- `local://`, the machine it runs on;
- a Docker daemon with the integration tests' scenario (tests/integration/docker_scenario.py)
  on a private dockerd started here (tests/servers/dockerd.py);
- the labelled Kubernetes dataset the tests use, as one `k8s-snapshot://` target.

    python perf/observed_counts.py                       # this checkout
    python perf/observed_counts.py --code ../before      # another checkout (read only)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATASET = ROOT / "tests" / "data" / "k8s" / "manifests"
SUMMARY = re.compile(r"^<(?:map|list) of \d+ items>$")


def _summaries(value: Any) -> bool:
    if isinstance(value, str):
        return bool(SUMMARY.match(value))
    if isinstance(value, dict):
        return any(_summaries(v) for v in value.values())
    if isinstance(value, list):
        return any(_summaries(v) for v in value)
    return False


def _bounded(value: Any) -> bool:
    """A large value read whole, kept as its first items and its count."""
    if isinstance(value, dict):
        return set(value) == {"first", "count"} or any(_bounded(v) for v in value.values())
    if isinstance(value, list):
        return any(_bounded(v) for v in value)
    return False


def count(report: Path) -> dict[str, int]:
    """Failing results, and those whose observed value is empty or holds a summary; those
    with a large value kept bounded, and messages saying a value was not read."""
    results = json.loads(report.read_text())["results"]
    failing = [r for r in results if r["status"] == "fail"]
    return {
        "fail": len(failing),
        "empty": sum(1 for r in failing if not r["observed"]),
        "summary": sum(1 for r in failing if _summaries(r["observed"])),
        "bounded": sum(1 for r in failing if _bounded(r["observed"])),
        "not read": sum(1 for r in failing if "<not read>" in r["message"]),
    }


def audit(code: Path, target: str, out: Path) -> dict[str, int]:
    env = {**os.environ, "PYTHONPATH": str(code)}
    command = [sys.executable, "-m", "auditor", "run", "-t", target, "--no-store", "-q"]
    # run from the checkout: `python -m` puts the working directory first on sys.path
    subprocess.run([*command, "-r", f"json:{out}"], env=env, cwd=code, check=False, timeout=900)
    return count(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout whose code runs")
    args = parser.parse_args()
    sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "integration")]
    from docker_scenario import scenario_on
    from servers.dockerd import dockerd_server

    rows: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory(prefix="observed-") as tmp:
        work = Path(tmp)
        rows["local://"] = audit(args.code, "local://", work / "local.json")
        rows["k8s dataset"] = audit(args.code, f"k8s-snapshot://{DATASET}", work / "k8s.json")
        (work / "dockerd").mkdir()
        (work / "scenario").mkdir()
        with (
            dockerd_server(work / "dockerd") as daemon,
            scenario_on(daemon.base_url, work / "scenario"),
        ):
            target = f"docker://{daemon.base_url}"
            rows["docker scenario"] = audit(args.code, target, work / "docker.json")
    header = "| target | failing | empty | summary | bounded value | message with <not read> |"
    print(header)  # noqa: T201
    print("|---|---:|---:|---:|---:|---:|")  # noqa: T201
    for name, row in rows.items():
        cells = " | ".join(str(row[k]) for k in ("fail", "empty", "summary", "bounded", "not read"))
        print(f"| {name} | {cells} |")  # noqa: T201


if __name__ == "__main__":
    main()
