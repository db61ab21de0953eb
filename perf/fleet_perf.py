"""A fleet of distinct SSH hosts: auditor against 50 and 100 of them, beside the floor of SSH.

Starts a private dockerd (tests/servers/dockerd.py) and N Debian 12 containers on it
(tests/servers/debian.py): each its own root filesystem, host name, host keys, packages,
sshd and sysctl settings (`varied_host`), its sshd published on a loopback port. Then, in
every repeat and for every fleet size, side by side:

- the floor: `ssh HOST true` with the OpenSSH client, `--concurrency` at a time;
- `auditor run -i inventory.yaml -c CONCURRENCY` with the default store (a fresh data
  directory per harness run) and with `--no-store`, for every `--code` tree given;
- with `--workers 1,2,4`: `auditor run --broker -i inventory.yaml --no-store` through that
  many `auditor worker` processes (each `--concurrency CONCURRENCY`, the fleet's key and
  known_hosts as their own) on a Redis of the harness's own (tests/servers/redis.py); the
  workers start before the clock does, their CPU (start-up included) counts.

Each audit must judge every host (no target error) or the harness stops. Prints the machine
(CPU, cores, load, steal) and a Markdown table for perf/RESULTS.md: wall times min / median /
max, and each audit's ratio to the floor measured in the same repeat. Everything started is
removed at the end, also on Ctrl-C or SIGTERM.

Usage: python perf/fleet_perf.py [--hosts 50,100] [--repeat 3] [--concurrency 25]
       [--stores default,none] [--code LABEL=DIR ...] [--workers 1,2,4]
`--code before=/path/to/an/old/checkout --code after=.` compares two versions of auditor in
one run (each runs with PYTHONPATH=DIR).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import docker
import docker.errors
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from servers import debian, dockerd  # noqa: E402  (the test servers live under tests/)
from servers.process import require_executable, run  # noqa: E402
from servers.redis import redis_server  # noqa: E402

STARTERS = 4  # hosts started at once (the daemon's container creation is the slow part)


@dataclass(frozen=True)
class Fleet:
    """Running hosts and what a client needs to reach them."""

    hosts: list[debian.SshHost]
    client_key: Path
    known_hosts: Path


@dataclass(frozen=True)
class Case:
    """One measured command: the floor, or one auditor tree with or without the store."""

    name: str
    size: int
    code: str | None = None  # the auditor tree's label; None for the floor
    store: bool = False
    workers: int = 0  # `auditor worker` processes of a distributed run; 0: one process


# ---------------------------------------------------------------- the machine


def _cpu_ticks() -> list[int]:
    return [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]


def machine() -> str:
    """CPU model, cores, memory, kernel, Python and the load average, as one paragraph."""
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor() or "unknown CPU",
    )
    memory = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    return (f"{model}, {len(os.sched_getaffinity(0))} cores, {memory / 2**20:.0f} GiB, "
            f"Linux {platform.release()}, Python {platform.python_version()}; "
            f"load average {load()}")


def load() -> str:
    return " / ".join(f"{v:.2f}" for v in os.getloadavg())


def steal_since(before: list[int]) -> tuple[float, float, float]:
    """CPU seconds since `before` (all cores): busy, stolen by other guests, in all."""
    now = _cpu_ticks()
    delta = [b - a for a, b in zip(before, now, strict=True)]
    tick = os.sysconf("SC_CLK_TCK")
    idle, iowait, steal = delta[3], delta[4], delta[7]
    return (sum(delta) - idle - iowait - steal) / tick, steal / tick, sum(delta) / tick


# ---------------------------------------------------------------- the fleet


def _keygen(path: Path) -> str:
    run([require_executable("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", "fleet-perf",
         "-f", str(path)])
    return path.with_suffix(".pub").read_text().strip()


@contextmanager
def fleet(work: Path, size: int) -> Iterator[Fleet]:
    """`size` distinct Debian hosts on a private dockerd under `work`; all removed on exit."""
    key = work / "client_ed25519"
    public_key = _keygen(key)
    (work / "dockerd").mkdir()
    with dockerd.dockerd_server(work / "dockerd") as daemon:
        client = docker.DockerClient(base_url=daemon.base_url, timeout=300)
        hosts: list[debian.SshHost] = []
        try:
            image = debian.debian_image(client)
            debian.ensure_network(client)
            variants = [debian.varied_host(i) for i in range(size)]
            batches = [variants[i::STARTERS] for i in range(STARTERS)]
            with ThreadPoolExecutor(STARTERS) as pool:
                started = pool.map(debian.start_hosts, [client] * STARTERS, batches,
                                   [public_key] * STARTERS, [image] * STARTERS,
                                   [600.0] * STARTERS)
                for batch in started:
                    hosts.extend(batch)
            hosts.sort(key=lambda h: h.name)
            known_hosts = work / "known_hosts"
            known_hosts.write_text("\n".join(debian.known_hosts_lines(client, hosts)) + "\n")
            yield Fleet(hosts, key, known_hosts)
        finally:
            _remove_all(client)
            client.close()


def _remove_all(client: docker.DockerClient) -> None:
    """Remove every test host of the daemon, including any started by an interrupted batch.
    A Ctrl-C in a terminal reaches dockerd too, which then stops its containers itself."""
    try:
        containers = client.containers.list(all=True,
                                            filters={"label": "auditor-test=ssh-host"})
    except (docker.errors.DockerException, requests.exceptions.ConnectionError):
        return  # the daemon is gone; dockerd_server removes its data root
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda c: c.remove(force=True), containers))


def inventory(work: Path, fleet_: Fleet, size: int) -> Path:
    """An inventory of the fleet's first `size` hosts, each under its own host name."""
    path = work / f"inventory-{size}.yaml"
    lines = ["defaults:", "  user: root", f"  key: {fleet_.client_key}",
             f"  known_hosts: {fleet_.known_hosts}", "  ssh_config: /dev/null", "hosts:"]
    lines += [f"  {h.name}: {{host: 127.0.0.1, port: {h.port}}}" for h in fleet_.hosts[:size]]
    path.write_text("\n".join(lines) + "\n")
    return path


# ---------------------------------------------------------------- the measured commands


def ssh_floor(fleet_: Fleet, size: int, concurrency: int) -> None:
    """`ssh HOST true` on the first `size` hosts, `concurrency` at a time."""
    ssh = require_executable("ssh")

    def one(host: debian.SshHost) -> None:
        argv = [ssh, "-F", "/dev/null", "-i", str(fleet_.client_key), "-o", "BatchMode=yes",
                "-o", f"UserKnownHostsFile={fleet_.known_hosts}", "-o", "ConnectTimeout=30",
                "-p", str(host.port), "root@127.0.0.1", "true"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise SystemExit(f"ssh to {host.name} failed: {done.stderr.strip()}")

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, fleet_.hosts[:size]))


def audit(work: Path, code: Path, inventory_: Path, size: int, concurrency: int,
          store: bool, broker: str | None = None) -> None:
    """`auditor run` of the inventory with the auditor in `code` (through `broker`'s workers
    when given); every host must be judged."""
    report = work / "results.json"
    report.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "auditor", "run", "--quiet", "-i", str(inventory_),
            "-c", str(concurrency), "--report", f"json:{report}"]
    if not store:
        argv.append("--no-store")
    if broker is not None:
        argv += ["--broker", broker]
    env = {**os.environ, "PYTHONPATH": str(code), "XDG_DATA_HOME": str(work / "data")}
    done = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=1800,
                          check=False)
    if done.returncode not in (0, 1):
        raise SystemExit(f"auditor run failed ({done.returncode}): {done.stderr[-2000:]}")
    targets = json.loads(report.read_text())["targets"]
    failed = [f"{t['name']}: {t['error']}" for t in targets if t["error"] is not None]
    if len(targets) != size or failed:
        raise SystemExit(f"{len(targets)} of {size} hosts audited; errors: {failed[:3]}")


@contextmanager
def workers(work: Path, code: Path, fleet_: Fleet, broker: str, count: int,
            concurrency: int) -> Iterator[None]:
    """`count` `auditor worker` processes with the fleet's key and known_hosts, once each
    says it is ready; stopped (SIGTERM, then SIGKILL) and reaped at the end."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []
    try:
        for index in range(count):
            log = work / f"worker-{index}.log"
            argv = [sys.executable, "-m", "auditor", "worker", "--broker", broker,
                    "--name", f"w{index}", "-c", str(concurrency),
                    "--identity", str(fleet_.client_key), "--known-hosts",
                    str(fleet_.known_hosts), "--ssh-config", "/dev/null"]
            with log.open("wb") as out:
                procs.append((subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                               env=env, cwd=work), log))
        deadline = time.monotonic() + 120
        for proc, log in procs:
            while b": ready, serving" not in log.read_bytes():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"worker not ready: {log.read_text(errors='replace')}")
                time.sleep(0.1)
        yield
    finally:
        for proc, _ in procs:
            proc.send_signal(signal.SIGTERM)
        for proc, _ in procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# ---------------------------------------------------------------- the run


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through the context managers: hosts and dockerd go


def _codes(given: Sequence[str]) -> dict[str, Path]:
    codes = {}
    for item in given or [f"this={ROOT}"]:
        label, sep, directory = item.partition("=")
        path = Path(directory).resolve()
        if not sep or not (path / "auditor" / "__init__.py").is_file():
            raise SystemExit(f"--code {item}: expected LABEL=DIR with DIR/auditor/__init__.py")
        codes[label] = path
    return codes


def cases(sizes: Sequence[int], codes: Sequence[str], stores: Sequence[bool],
          worker_counts: Sequence[int] = ()) -> list[Case]:
    found = []
    for size in sizes:
        found.append(Case(f"{size} hosts: ssh HOST true (floor)", size))
        for code in codes:
            label = "" if len(codes) == 1 else f" [{code}]"
            for store in stores:
                what = "default store" if store else "--no-store"
                found.append(Case(f"{size} hosts: auditor run, {what}{label}", size, code, store))
            for count in worker_counts:
                found.append(Case(f"{size} hosts: auditor run --broker, --no-store, {count} "
                                  f"worker(s){label}", size, code, workers=count))
    return found


def measure(args: argparse.Namespace, work: Path, fleet_: Fleet, stack: ExitStack) -> None:
    codes = _codes(args.code)
    stores = [s == "default" for s in args.stores.split(",")]
    sizes = [int(s) for s in args.hosts.split(",")]
    worker_counts = [int(n) for n in args.workers.split(",") if n]
    todo = cases(sizes, list(codes), stores, worker_counts)
    broker = None
    if worker_counts:  # a broker of the harness's own, for every distributed case
        broker = stack.enter_context(redis_server(work)).url
    inventories = {size: inventory(work, fleet_, size) for size in sizes}
    times: dict[Case, list[float]] = defaultdict(list)
    cpu: dict[Case, list[float]] = defaultdict(list)
    ratios: dict[Case, list[float]] = defaultdict(list)
    for code in codes.values():  # untimed: the store's database is created, the disk cache warm
        audit(work, code, inventories[min(sizes)], min(sizes), args.concurrency, store=True)
    box = _cpu_ticks()
    loads = [load()]
    for repeat in range(args.repeat):
        floors: dict[int, float] = {}
        for case in todo:
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            if case.code is None:
                ssh_floor(fleet_, case.size, args.concurrency)
            elif case.workers:
                assert broker is not None
                with workers(work, codes[case.code], fleet_, broker, case.workers,
                             args.concurrency):
                    started = time.perf_counter()  # the clock starts once they are ready
                    audit(work, codes[case.code], inventories[case.size], case.size,
                          args.concurrency, False, broker)
                    finished = time.perf_counter()
            else:
                audit(work, codes[case.code], inventories[case.size], case.size,
                      args.concurrency, case.store)
            elapsed = (finished if case.workers else time.perf_counter()) - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            times[case].append(elapsed)
            cpu[case].append(after.ru_utime + after.ru_stime
                             - children.ru_utime - children.ru_stime)
            if case.code is None:
                floors[case.size] = elapsed
            else:
                ratios[case].append(elapsed / floors[case.size])
            print(f"repeat {repeat + 1}: {case.name}: {elapsed:.2f} s, load {load()}",
                  file=sys.stderr, flush=True)
        loads.append(load())
    busy, steal, total = steal_since(box)
    print(f"\nMachine: {machine()}.")
    print(f"Load average (1/5/15 min) before each repeat and at the end: {'; '.join(loads)}.")
    print(f"Over the measurements: the machine busy {busy:.0f} CPU-s of {total:.0f}, "
          f"stolen by other guests {steal:.1f} s. Concurrency {args.concurrency}, "
          f"{args.repeat} repeats.\n")
    print("| case | min s | median s | max s | CPU s (median) "
          "| ratio to floor (min / median / max) |")
    print("|---|---:|---:|---:|---:|---|")
    for case in todo:
        t, c = times[case], cpu[case]
        ratio = (" / ".join(f"{f(ratios[case]):.2f}" for f in (min, statistics.median, max))
                 if ratios[case] else "1")
        print(f"| {case.name} | {min(t):.2f} | {statistics.median(t):.2f} | {max(t):.2f} "
              f"| {statistics.median(c):.2f} | {ratio} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", default="50,100", help="fleet sizes, comma-separated")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=25)
    parser.add_argument("--stores", default="default,none",
                        help="comma-separated: default (the default store), none (--no-store)")
    parser.add_argument("--code", action="append", default=[], metavar="LABEL=DIR",
                        help="an auditor source tree to measure (repeatable; default: this one)")
    parser.add_argument("--workers", default="", metavar="N,...",
                        help="also distributed runs through N `auditor worker` processes")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)
    work = Path(tempfile.mkdtemp(prefix="auditor-fleet-", dir="/tmp"))
    work.chmod(0o711)
    size = max(int(s) for s in args.hosts.split(","))
    try:
        started = time.perf_counter()
        with fleet(work, size) as fleet_, ExitStack() as stack:
            print(f"{size} hosts up in {time.perf_counter() - started:.0f} s", file=sys.stderr)
            measure(args, work, fleet_, stack)
    except KeyboardInterrupt:
        print("interrupted: hosts and dockerd removed", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        run(["rm", "-rf", str(work)])


if __name__ == "__main__":
    main()
