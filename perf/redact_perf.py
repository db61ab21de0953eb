"""Redaction cost: `redact()` over every object of a generated Kubernetes snapshot.

Redaction runs over every fact before anything else sees it, so its rules must stay cheap.
This times it alone, in a fresh process per measurement, over the kubectl lists of the
snapshot perf/k8s_perf.py generates (pods with env, args, labels and annotations): a cold
pass (first sight of every text, as on a first target) and a warm one (texts known clean
from the first pass, as on the next targets of a fleet). Prints CPU seconds; run it once on
the code before and once after a change to redact.py (PYTHONPATH picks the code):

    python perf/redact_perf.py --pods 10000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def measure(directory: Path) -> None:
    """Child: load every list, then time two redaction passes over all of them."""
    from auditor.redact import redact

    lists = [json.loads(path.read_text()) for path in sorted(directory.glob("*.json"))]
    timings = []
    for _ in range(2):
        started = time.process_time()
        for document in lists:
            redact(document)
        timings.append(time.process_time() - started)
    objects = sum(len(d["items"]) for d in lists)
    print(json.dumps({"objects": objects, "cold": timings[0], "warm": timings[1]}))  # noqa: T201


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pods", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.measure)
        return
    from k8s_perf import generate

    with tempfile.TemporaryDirectory(prefix="auditor-redact-perf-") as workdir:
        snapshot = Path(workdir) / "snapshot"
        generate(snapshot, args.pods, standalone=False)
        runs = []
        for _ in range(args.runs):
            out = subprocess.run(
                [sys.executable, __file__, "--measure", str(snapshot)],
                capture_output=True, text=True, check=True, env=os.environ, timeout=1800,
            )  # fmt: skip
            runs.append(json.loads(out.stdout))
    best = {key: min(r[key] for r in runs) for key in ("cold", "warm")}
    print(  # noqa: T201
        f"{args.pods} pods, {runs[0]['objects']} objects: redact() cold {best['cold']:.2f} s CPU, "
        f"warm {best['warm']:.2f} s CPU (best of {args.runs})"
    )


if __name__ == "__main__":
    main()
