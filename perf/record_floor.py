"""The floor of recording a distributed run: one answered host, received and stored, alone.

perf/celery_perf.py measures the coordinator in a whole run, beside its answerers on the
same two cores. This measures the pieces of receiving and recording one host's answer with
nothing else running, one process, one core: decoding the answer (Celery's JSON, the
standard library), rebuilding its results (auditor.fleet.wire), and `Store.save_target`
(hash, compress and commit its facts and results) into SQLite and into a real PostgreSQL
(Debian's, started here as the tests start it). Each host's facts are its own, as on a
fleet of distinct hosts (celery_perf.renamed). Whoever records (the coordinator, or workers
writing to the store themselves), this work is done once per target; the last column is the
most targets per second this machine's cores could record if they did nothing else.

Usage: python perf/record_floor.py [--targets 300]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "perf")]

from celery_perf import machine, recorded_answer, renamed, say, server_cpu  # noqa: E402
from servers.postgres import postgres_server  # noqa: E402

from auditor import document  # noqa: E402
from auditor.engine import Judged  # noqa: E402
from auditor.fleet.wire import checks_by_id, judged_from_json  # noqa: E402
from auditor.store import open_store  # noqa: E402
from auditor.views import load_named  # noqa: E402


def per_target(
    step: Callable[[int], object], count: int, server: int | None = None
) -> tuple[float, float]:
    """Milliseconds of CPU per call of step(i), over `count` calls: this process's, and the
    server's that it talks to."""
    started, served = time.process_time(), server_cpu(server)
    for i in range(count):
        step(i)
    client = time.process_time() - started
    return client / count * 1e3, (server_cpu(server) - served) / count * 1e3


WARM_UP = 50  # hosts stored first, unmeasured: statements compiled, caches warm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=300)
    count = parser.parse_args().targets
    profile = load_named("nist-800-190", ())
    checks = checks_by_id(profile)
    answer = recorded_answer()
    texts = [
        json.dumps(renamed(answer, {"name": f"h{i:05d}", "url": f"ssh://h{i:05d}"}))
        for i in range(WARM_UP + count)
    ]
    decoded = [json.loads(text) for text in texts]
    judged = [judged_from_json(data, checks) for data in decoded]
    rows = [
        ("decode the answer (JSON)", per_target(lambda i: json.loads(texts[i]), count)),
        ("rebuild its results", per_target(lambda i: judged_from_json(decoded[i], checks), count)),
    ]
    with tempfile.TemporaryDirectory(prefix="auditor-record-floor-") as work:
        os.chmod(work, 0o755)  # the postgres account reaches its directory below
        (Path(work) / "pg").mkdir()
        with postgres_server(Path(work) / "pg") as postgres:
            for label, url, server in (
                ("store it: SQLite", f"sqlite:///{work}/store.db", None),
                ("store it: PostgreSQL", postgres.url, postgres.pid),
            ):
                with open_store(url) as store:
                    for run, hosts in (
                        ("warm-up", judged[:WARM_UP]),
                        ("measured", judged[WARM_UP:]),
                    ):
                        store.begin_run(
                            document.catalog(profile),
                            [j.record.name for j in hosts],
                            run_id=run,
                            started_at="2026-01-01T00:00:00.000Z",
                            source="run",
                            extra={},
                        )

                        def record(i: int, run: str = run, hosts: list[Judged] = hosts) -> None:
                            store.save_target(run, hosts[i].record, hosts[i].results)

                        used = per_target(record, len(hosts), server)
                    rows.append((label, used))
    say(f"# {machine()}")
    say(
        f"one answer {len(texts[0]) / 1024:.0f} KiB, {len(answer['results'])} results, "
        f"{len(answer['record']['facts'])} facts; {count} distinct hosts, measured after "
        f"{WARM_UP} others"
    )
    say("")
    say("| step, one process, nothing else running | CPU ms/target: this process | server | all |")
    say("|---|---:|---:|---:|")
    for label, (own, served) in rows:
        say(f"| {label} | {own:.2f} | {served:.2f} | {own + served:.2f} |")
    cores = os.cpu_count() or 1
    received = sum(own + served for _, (own, served) in rows[:2])
    for label, (own, served) in rows[2:]:
        floor = received + own + served
        say(
            f"| receive and record: {label.removeprefix('store it: ')} | | | {floor:.2f} "
            f"(at most {cores * 1000 / floor:,.0f} targets/s on all {cores} cores) |"
        )


if __name__ == "__main__":
    main()
