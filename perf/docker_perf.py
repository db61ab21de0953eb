"""Docker audit performance: the full Docker part of the NIST 800-190 profile end to end, with
20, 200 and 500 containers on a private dockerd started here (tests/servers/dockerd.py).

Each size is timed with the real CLI (`python -m auditor run --target docker://unix://...`,
process start, profile load, collection, evaluation and the JSON report), and once in-process
to split collection from evaluation. Each CLI run alternates with its floor, the Docker CLI
reading what the audit reads of the containers (`docker ps -aq` then `docker inspect` of
them all), so that the ratio holds on a busy machine. About a tenth of the containers run
(`sleep`, no network); the rest are created, with a mix of hardened and default settings.

Usage: python perf/docker_perf.py [--repeat N] [--sizes 20,200,500] [--write]
(--write appends the table to perf/RESULTS.md). Needs root and docker.io, like the tests.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import docker  # noqa: E402
from servers.dockerd import busybox_image, dockerd_server  # noqa: E402

from auditor import cyclegc, document, engine  # noqa: E402
from auditor.config import TargetSpec  # noqa: E402
from auditor.model import Run  # noqa: E402
from auditor.profiles import load_profile  # noqa: E402
from auditor.reporters import ReportRequest, write  # noqa: E402

RUNNING_SHARE = 10  # one container in ten is started


def add_containers(api: docker.APIClient, image: str, start: int, stop: int) -> None:
    """Containers start..stop-1: every tenth running, every other one hardened."""
    for index in range(start, stop):
        hardened = index % 2 == 0
        host_config = api.create_host_config(
            network_mode="none",
            read_only=hardened,
            cap_drop=["ALL"] if hardened else None,
            security_opt=["no-new-privileges"] if hardened else None,
            mem_limit="32m" if hardened else None,
            pids_limit=32 if hardened else None,
        )
        created = api.create_container(
            image,
            ["sleep", "3600"],
            name=f"perf-{index:04d}",
            labels={"perf.index": str(index)},
            environment={"APP_MODE": "perf"},
            host_config=host_config,
        )
        if index % RUNNING_SHARE == 0:
            api.start(created["Id"])


def docker_inspect_all(host: str) -> None:
    """The floor: the Docker CLI lists every container and inspects them all."""
    listed = subprocess.run(["docker", "-H", host, "ps", "-aq"], capture_output=True, text=True,
                            timeout=120, check=True)
    subprocess.run(["docker", "-H", host, "inspect", *listed.stdout.split()],
                   capture_output=True, timeout=120, check=True)


def cli_time(url: str, report: Path, repeat: int) -> tuple[float, float, float]:
    """Median and best wall time of the CLI auditing url, in seconds, and the median ratio to
    the floor run just before each."""
    times, ratios = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        docker_inspect_all(url.removeprefix("docker://"))
        floor = time.perf_counter() - started
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "auditor", "run", "--quiet", "--no-store",
             "--target", url, "--report", f"json:{report}"],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        times.append(time.perf_counter() - started)
        ratios.append(times[-1] / floor)
        if done.returncode not in (0, 1):
            raise SystemExit(f"auditor run failed ({done.returncode}): {done.stderr}")
    return statistics.median(times), min(times), statistics.median(ratios)


def in_process(url: str, report: Path) -> dict[str, float | int]:
    """One audit in this process, phase by phase: what the CLI does after its imports."""
    started = time.perf_counter()
    profile = load_profile()
    loaded = time.perf_counter()
    with cyclegc.run_policy():  # as a run applies it
        record = engine.collect(profile, TargetSpec(url=url))
        collected = time.perf_counter()
        if record.error:
            raise SystemExit(f"audit failed: {record.error}")
        results = engine.evaluate(profile, record, profile.variables)
        evaluated = time.perf_counter()
    run = Run("perf", "perf", profile.id, profile.version, "", "", (record,), tuple(results))
    write(ReportRequest("json", str(report)), document.build(run, profile))
    reported = time.perf_counter()
    return {
        "profile": loaded - started,
        "collect": collected - loaded,
        "evaluate": evaluated - collected,
        "report": reported - evaluated,
        "results": len(results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", default="20,200,500")
    parser.add_argument("--write", action="store_true", help="append to perf/RESULTS.md")
    options = parser.parse_args()
    sizes = [int(s) for s in options.sizes.split(",")]
    rows = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="auditor-perf-docker-", dir="/tmp") as tmp:
        work = Path(tmp)
        (work / "dockerd").mkdir()
        with dockerd_server(work / "dockerd") as daemon:
            image = busybox_image(daemon.base_url)
            api = docker.APIClient(base_url=daemon.base_url, version="auto", timeout=120)
            url = f"docker://{daemon.base_url}"
            have = 0
            for size in sizes:
                add_containers(api, image, have, size)
                have = size
                in_process(url, work / "warm.json")  # warm the daemon's caches once
                median, best, ratio = cli_time(url, work / "results.json", options.repeat)
                rows.append((size, median, best, ratio, in_process(url, work / "split.json")))
                sys.stderr.write(f"{size} containers: {median:.2f} s median\n")
            api.close()
    table = render(rows, options.repeat, (load_before, os.getloadavg()[0]))
    sys.stdout.write(table)
    if options.write:
        with (ROOT / "perf" / "RESULTS.md").open("a", encoding="utf-8") as out:
            out.write("\n" + table)


def render(
    rows: list[tuple[int, float, float, float, dict[str, float | int]]],
    repeat: int,
    load: tuple[float, float],
) -> str:
    cpus = os.cpu_count()
    today = datetime.date.today().isoformat()
    lines = [
        "## Docker: full Docker profile against a private dockerd (perf/docker_perf.py)",
        "",
        f"{today}, this machine: {cpus} cores, {platform.platform()}, Python "
        f"{platform.python_version()}, Docker Engine 20.10 (Debian 12 docker.io) on a unix "
        f"socket. CLI end to end (`auditor run --target docker://unix://... --report json`, "
        f"--no-store), median and best of {repeat}; the split from one more run in-process "
        f"(profile load, collection, evaluation, document + JSON report; the rest of the CLI "
        f"time is interpreter start and imports). One container in {RUNNING_SHARE} running, "
        f"the rest created; one image (busybox). The floor: `docker inspect` of every container "
        f"by the Docker CLI. 1-minute load average {load[0]:.1f} before, "
        f"{load[1]:.1f} after (the machine is shared: other test suites run beside this one).",
        "",
        "| containers | CLI median | CLI best | CLI / floor | profile | collect | evaluate "
        "| report | results |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size, median, best, ratio, split in rows:
        lines.append(
            f"| {size} | {median:.2f} s | {best:.2f} s | {ratio:.1f} | {split['profile']:.2f} s "
            f"| {split['collect']:.2f} s | {split['evaluate']:.2f} s | {split['report']:.2f} s "
            f"| {split['results']} |"
        )
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
