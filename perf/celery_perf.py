"""Where results meet: the coordinator's cost per target of a distributed run, and its memory.

Starts Debian's redis-server (tests/servers/redis.py) and ANSWERERS worker processes that take
`auditor.audit` tasks from that real broker through Celery and answer each with a judged host
built from recorded host facts (tests/fixtures/facts: every host fact of one Debian 12 VM,
judged once with nist-800-190), renamed to the task's target. They connect to nothing, so what
is measured is the coordinator: `auditor run --broker URL -i inventory.yaml` of N targets
(enqueue each task, receive each answer, record it, write the JSON report), with the store (a
fresh SQLite file, or a fresh database on Debian's PostgreSQL started here as the tests start
it) and without (`--no-store`). Per case: wall time, targets per second of wall time, the
coordinator's CPU time per target (user + system of it and its store writer, from wait4) and
the targets per CPU second that gives, the database server's CPU per target (PostgreSQL's
processes), and the coordinator's peak RSS.

Prints the machine and a Markdown table for perf/RESULTS.md. The machine is shared: compare
the CPU figures, and ratios measured in one run. Everything started is stopped at the end.

Usage: python perf/celery_perf.py [--targets 1000,10000] [--answerers 2]
                                  [--stores sqlite,postgresql,none]
                                  [--same-facts]
       python perf/celery_perf.py --answer BROKER_URL   (one answerer; the harness starts them)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import mmap
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # this tree's auditor, and the test servers

from servers.postgres import PostgresServer, postgres_server  # noqa: E402  (the test servers
from servers.redis import redis_server  # noqa: E402  live under tests/)

FIXTURES = ROOT / "tests" / "fixtures" / "facts"
RECORDED_HOST = "debian12-buildvm-root.json"  # the case every host fact has a recording of


# ---------------------------------------------------------------- the answerers


def recorded_answer() -> dict[str, Any]:
    """A worker's answer for one host: the recorded facts of a Debian 12 VM, judged."""
    from auditor import engine
    from auditor.facts import new_fact, utc_now
    from auditor.fleet.wire import judged_to_json
    from auditor.model import TargetKind, TargetRecord
    from auditor.views import load_named

    name = "recorded-vm"
    facts = []
    for folder in sorted(FIXTURES.glob("host.*")):
        case = folder / RECORDED_HOST
        if not case.exists():
            case = sorted(folder.glob("*.json"))[0]
        recorded = json.loads(case.read_text())
        facts.append(new_fact(folder.name, name, recorded["expected"], source=recorded["source"]))
    now = utc_now()
    record = TargetRecord(name, f"ssh://{name}", TargetKind.HOST, now, now, facts=tuple(facts))
    profile = load_named("nist-800-190", ())
    results = engine.evaluate(profile, record, profile.variables)
    return judged_to_json(engine.Judged(record, results, profile.variables), "answerer")


def renamed(
    answer: Mapping[str, Any], target: Mapping[str, Any], *, distinct: bool = True
) -> dict[str, Any]:
    """`answer` as the answer for `target` (its record's name and URL: the results' target).
    `distinct`: every fact's data is the host's own, as on a fleet of distinct hosts, where
    file lists, packages and addresses differ from host to host (else every host's evidence
    is the same, and a run keeps one copy of it)."""
    name, url = target["name"], target["url"]
    record = {**answer["record"], "name": name, "url": url}
    if distinct:
        record["facts"] = [_own(fact, name) for fact in record["facts"]]
    return {**answer, "record": record}


def _own(fact: Mapping[str, Any], host: str) -> Mapping[str, Any]:
    """The fact with data of `host`'s own (the recorded data, with the host's name beside
    it) and that data's sha256: what the coordinator checks it against."""
    if fact["data"] is None or fact["error"]:
        return fact
    text = f'{{"data":{fact["data"]},"host":{json.dumps(host)}}}'
    return {**fact, "data": text, "sha256": hashlib.sha256(text.encode()).hexdigest()}


def answer(broker: str, distinct: bool) -> None:
    """Serve audit tasks with the recorded answer until stopped."""
    from auditor.fleet.app import DEFAULT_QUEUE, TASK, make_app

    canned = recorded_answer()
    app = make_app(broker)

    @app.task(name=TASK, acks_late=True)  # type: ignore[untyped-decorator]
    def audit(payload: dict[str, Any]) -> dict[str, Any]:
        return renamed(canned, payload["target"], distinct=distinct)

    worker = app.Worker(
        quiet=True,
        hostname=f"answerer-{os.getpid()}@perf",
        queues=[DEFAULT_QUEUE],
        concurrency=1,
        pool="solo",
        loglevel="WARNING",
        without_mingle=True,
        without_gossip=True,
    )
    worker.start()


@contextmanager
def answerers(broker: str, count: int, work: Path, same_facts: bool) -> Iterator[None]:
    """`count` answerer processes, once every one answers a ping."""
    from auditor.fleet.app import make_app

    procs = []
    try:
        for index in range(count):
            log = (work / f"answerer-{index}.log").open("wb")
            procs.append(
                subprocess.Popen(
                    [sys.executable, __file__, "--answer", broker]
                    + (["--same-facts"] if same_facts else []),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=_env(str(ROOT)),
                )
            )
        app = make_app(broker)
        deadline = time.monotonic() + 120
        while len(app.control.inspect(timeout=1).ping() or {}) < count:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise SystemExit(f"answerers did not start; see {work}/answerer-*.log")
        yield
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# ---------------------------------------------------------------- the coordinator


@dataclass(frozen=True)
class Measured:
    targets: int
    store: str  # sqlite | postgresql | none
    wall: float  # seconds
    cpu: float  # seconds, user + system, the coordinator and its store writer
    server_cpu: float | None  # seconds, the database server's processes (PostgreSQL)
    max_rss_mib: float
    errors: int
    report_mib: float


def inventory(path: Path, targets: int) -> Path:
    lines = ["hosts:"] + [
        f"  h{i:05d}: {{url: 'ssh://h{i:05d}.perf.invalid'}}" for i in range(targets)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def coordinate(
    broker: str, targets: int, store: str, work: Path, postgres: PostgresServer | None
) -> Measured:
    """One `auditor run --broker` of `targets` answered targets, storing into `store`."""
    hosts = inventory(work / f"inventory-{targets}.yaml", targets)
    report = work / f"results-{targets}-{store}.json"
    argv = [sys.executable, "-m", "auditor", "run", "--broker", broker, "-q", "-i", str(hosts),
            "-r", f"json:{report}", "--answer-timeout", "3600"]  # fmt: skip
    server_pid = None
    if store == "sqlite":
        argv += ["--db", f"sqlite:///{work / f'store-{targets}.db'}"]
    elif store == "postgresql":
        assert postgres is not None
        argv += ["--db", fresh_database(postgres, f"store_{targets}")]
        server_pid = postgres.pid
    else:
        argv += ["--no-store"]
    served = server_cpu(server_pid)
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=_env(str(ROOT)), cwd=work, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    database = server_cpu(server_pid) - served if server_pid else None
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode not in (0, 1):
        raise SystemExit(f"auditor run exited {proc.returncode}: {stderr[-2000:]}")
    listed = report_targets(report)
    report_mib = report.stat().st_size / 2**20
    report.unlink()
    errors = sum(1 for t in listed if t["error"])
    if len(listed) != targets:
        raise SystemExit(f"{len(listed)} of {targets} targets in the report")
    cpu = usage.ru_utime + usage.ru_stime
    rss = usage.ru_maxrss / 1024
    return Measured(targets, store, wall, cpu, database, rss, errors, report_mib)


def fresh_database(postgres: PostgresServer, name: str) -> str:
    """The URL of a new, empty database `name` on the server."""
    import psycopg

    admin = (
        f"host={postgres.host} port={postgres.port} user={postgres.user} dbname={postgres.database}"
    )
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return postgres.url.rsplit("/", 1)[0] + f"/{name}"


def server_cpu(pid: int | None) -> float:
    """CPU seconds a server (pid and its children: PostgreSQL's backends) has used; what a
    backend used is counted while it runs and, once it has exited, in its parent's children's
    time."""
    if pid is None:
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if entry.name == str(pid):  # its own time, and its reaped children's
            total += sum(int(field) for field in fields[11:15])
        elif fields[1] == str(pid):
            total += int(fields[11]) + int(fields[12])
    return total / tick


def report_targets(report: Path) -> list[dict[str, Any]]:
    """The `targets` of a JSON report, read without decoding its results and evidence (the
    report of 10,000 distinct hosts is gigabytes)."""
    with report.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as m:
        start = m.find(b',"targets":[') + len(b',"targets":')
        end = m.find(b'],"results":[', start) + 1
        listed: list[dict[str, Any]] = json.loads(m[start:end])
    return listed


# ---------------------------------------------------------------- reporting


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _env(path: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": path}


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return f"{cpu}, {os.cpu_count()} cores, load {load}, Python {platform.python_version()}"


def table(rows: list[Measured], answer_bytes: int, count: int, same_facts: bool) -> str:
    out = [
        f"answerers: {count}; one answer (facts + results of one host, JSON): "
        f"{answer_bytes / 1024:.0f} KiB; "
        + ("every host answers the same facts" if same_facts else "each host's facts its own"),
        "",
        "| targets | store | wall s | targets/s (wall) | coordinator CPU ms/target | "
        "targets per CPU s | database server CPU ms/target | peak RSS MiB | JSON report MiB | "
        "errors |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    shown = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "none": "none"}
    for m in rows:
        database = "-" if m.server_cpu is None else f"{1000 * m.server_cpu / m.targets:.2f}"
        out.append(
            f"| {m.targets:,} | {shown[m.store]} | {m.wall:.1f} | "
            f"{m.targets / m.wall:,.0f} | {1000 * m.cpu / m.targets:.2f} | "
            f"{m.targets / m.cpu:,.0f} | {database} | {m.max_rss_mib:,.0f} | "
            f"{m.report_mib:,.0f} | {m.errors} |"
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--targets", default="1000,10000")
    parser.add_argument("--answerers", type=int, default=2)
    parser.add_argument("--stores", default="sqlite,none", help="sqlite, postgresql, none")
    parser.add_argument(
        "--same-facts",
        action="store_true",
        help="every host answers the same evidence (as the sections before 2026-12-06 11:00)",
    )
    parser.add_argument("--answer", metavar="BROKER", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.answer:
        answer(args.answer, distinct=not args.same_facts)
        return
    sizes = [int(n) for n in args.targets.split(",")]
    stores = args.stores.split(",")
    unknown = set(stores) - {"sqlite", "postgresql", "none"}
    if unknown:
        parser.error(f"--stores: unknown store {sorted(unknown)[0]!r}")
    answer_bytes = len(json.dumps(recorded_answer()))
    say(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {machine()}")
    rows = []
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="celery-perf-")))
        broker = stack.enter_context(redis_server(work)).url
        postgres = None
        if "postgresql" in stores:
            os.chmod(work, 0o755)  # the postgres account reaches its directory below
            (work / "postgres").mkdir()
            postgres = stack.enter_context(postgres_server(work / "postgres"))
        stack.enter_context(answerers(broker, args.answerers, work, args.same_facts))
        for size in sizes:
            for store in stores:
                rows.append(coordinate(broker, size, store, work, postgres))
                sys.stderr.write(f"{rows[-1]}\n")
    say(table(rows, answer_bytes, args.answerers, args.same_facts))
    say(f"# done; load {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")


if __name__ == "__main__":
    main()
