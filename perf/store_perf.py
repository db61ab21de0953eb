"""Evidence store performance: storing a run of 10,000 results with evidence, and growth.

Builds a fleet-shaped run (TARGETS hosts x RESULTS_PER_TARGET results, each host with a
package list shared by the fleet and process, sysctl and file facts of its own), stores it
in a fresh SQLite database the way `auditor run` does (begin_run, save_target per target,
save_results, finish_run), then stores the same evidence again, re-collected (new times),
and reports the time and the database's growth. Prints a Markdown table for
perf/RESULTS.md. Usage: python perf/store_perf.py [--repeat N] [--db URL]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from auditor import document, engine
from auditor.facts import new_fact, utc_now
from auditor.model import Result, Severity, Status, Subject, TargetKind, TargetRecord
from auditor.profiles import load_profile
from auditor.scoring import score
from auditor.store import open_store

TARGETS = 50
RESULTS_PER_TARGET = 200  # 10,000 results in all
SEVERITIES = list(Severity)
STATUSES = [Status.PASS] * 5 + [Status.FAIL] * 2 + [Status.SKIP] * 2 + [Status.ERROR]


def fleet_facts(seed: int = 7) -> list[dict[str, object]]:
    """Per host: fact name -> data. Packages are the same on every host (one image)."""
    rng = random.Random(seed)
    packages = [
        {
            "name": f"pkg-{i}",
            "version": f"{rng.randint(1, 9)}.{rng.randint(0, 30)}",
            "arch": "amd64",
        }
        for i in range(600)
    ]
    hosts = []
    for host in range(TARGETS):
        hosts.append(
            {
                "host.packages": packages,
                "host.processes": [
                    {
                        "pid": 100 + i,
                        "comm": f"proc{i % 40}",
                        "user": rng.choice(["root", "www"]),
                        "args": f"/usr/bin/proc{i % 40} --worker {i} --host h{host}",
                    }
                    for i in range(150)
                ],  # fmt: skip
                "host.sysctl": {
                    **{f"net.ipv4.conf.eth{i % 4}.opt{i}": str(i % 3) for i in range(800)},
                    "kernel.hostname": f"host{host}",
                    "kernel.random.boot_id": f"{rng.getrandbits(128):032x}",
                },
                "host.file_modes": [
                    {
                        "path": f"/etc/app/file{i}",
                        "mode": rng.choice(["0644", "0600", "0666"]),
                        "owner": "root",
                        "group": "root",
                        "exists": True,
                        "type": "file",
                    }
                    for i in range(60)
                ],  # fmt: skip
                **{f"host.small{i}": {"value": i, "host": host} for i in range(10)},
            }
        )
    return hosts


def records(hosts: list[dict[str, object]]) -> list[TargetRecord]:
    """Target records with facts made as collectors make them (redacted, hashed)."""
    out = []
    for index, data in enumerate(hosts):
        name = f"ssh://audit@host{index}.example.com"
        facts = tuple(
            new_fact(fact, name, value, source=f"/bin/sh -s (section {fact})", status=0)
            for fact, value in sorted(data.items())
        )
        now = utc_now()
        out.append(TargetRecord(name, name, TargetKind.HOST, now, now, facts=facts))
    return out


def results_for(record: TargetRecord) -> list[Result]:
    rng = random.Random(record.name)
    evidence = [fact.sha256 for fact in record.facts]
    return [
        Result(
            check_id=f"host.check-{i % 80}",
            control_id=f"4.5.{i % 5 + 1}",
            title=f"Check number {i % 80} holds on the host",
            severity=SEVERITIES[i % len(SEVERITIES)],
            target=record.name,
            subject=Subject("file", f"/etc/app/file{i}"),
            status=rng.choice(STATUSES),
            message=f"/etc/app/file{i} is root:root mode 0644",
            observed={"subject.mode": "0644", "subject.owner": "root"},
            expected="root:root, mode 644 or stricter",
            evidence=(evidence[i % len(evidence)],),
            remediation="chown root:root FILE; chmod 644 FILE.",
        )
        for i in range(RESULTS_PER_TARGET)
    ]


def store_run(url: str, profile, targets: list[TargetRecord]) -> float:
    """Seconds to store one run, the way auditor run does (store opened beforehand). The
    scores are computed before, as the run's document computes them once anyway."""
    evaluated = [(record, results_for(record)) for record in targets]
    organisation = engine.attestation_results(profile, {TargetKind.HOST})
    every = [r for _, results in evaluated for r in results] + organisation
    scores = asdict(score(every, {e.control.id: e.section.id for e in profile.controls}))
    with open_store(url) as store:
        started = time.perf_counter()
        run_id = store.begin_run(document.catalog(profile), [record.name for record in targets])
        for record, results in evaluated:
            store.save_target(run_id, record, results)
        store.save_results(run_id, organisation)
        store.finish_run(run_id, True, scores=scores)
        return time.perf_counter() - started


def size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    profile = load_profile()
    hosts = fleet_facts()
    total = TARGETS * RESULTS_PER_TARGET
    first_times, second_times, growths, sizes, loads = [], [], [], [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "store.db"
            url = f"sqlite:///{path}"
            first_times.append(store_run(url, profile, records(hosts)))
            first = size(path)
            second_times.append(store_run(url, profile, records(hosts)))  # re-collected
            growths.append(size(path) - first)
            sizes.append(first)
            with open_store(url) as store:
                started = time.perf_counter()
                store.load_document(store.resolve("latest"))
                loads.append(time.perf_counter() - started)
    ratio = statistics.median(growths) / statistics.median(sizes)
    median, best = statistics.median, min
    lines = [
        f"| measure ({total:,} results, {TARGETS} targets, SQLite) | median | best | goal |",
        "|---|---|---|---|",
        f"| store a run | {median(first_times):.2f} s | {best(first_times):.2f} s | < 2 s |",
        f"| store it again, evidence unchanged | {median(second_times):.2f} s | "
        f"{best(second_times):.2f} s | |",
        f"| database after the first run | {median(sizes) / 1e6:.2f} MB | | |",
        f"| growth by the second run | {median(growths) / 1e3:.1f} kB "
        f"({100 * ratio:.2f}% of the first) | | < 10% |",
        f"| load_document of a stored run | {median(loads):.2f} s | {best(loads):.2f} s | |",
    ]
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
