"""What reading the processes of running containers costs a Docker audit (docker.processes,
one GET /containers/{id}/top per running container, 4 at a time in the collector's pool).

On a private dockerd started here (tests/servers/dockerd.py) with N running busybox
containers, each repeat times, in this process and in turn: the collection of docker.containers
alone (list + inspect of each, what every Docker audit does), of docker.containers and
docker.processes together (the two facts are gathered side by side), and the floor, one
docker-py `top` call per running container one after the other. Medians and the ratios of
the medians are printed; the machine is shared, so compare ratios from one run.

Usage: python perf/docker_top_perf.py [--repeat N] [--sizes 20,100] [--write]
(--write appends the table to perf/RESULTS.md). Needs root and docker.io, like the tests.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # this checkout's auditor, not an installed one

import docker  # noqa: E402
from servers.dockerd import busybox_image, dockerd_server  # noqa: E402

from auditor.collectors import collector_for  # noqa: E402
from auditor.config import TargetSpec  # noqa: E402
from auditor.model import TargetKind  # noqa: E402
from auditor.profiles import load_profile  # noqa: E402
from auditor.targets.docker import DockerTarget  # noqa: E402


def start_containers(api: docker.APIClient, image: str, start: int, stop: int) -> None:
    for index in range(start, stop):
        host_config = api.create_host_config(network_mode="none")
        created = api.create_container(
            image, ["sleep", "3600"], name=f"top-{index:04d}", host_config=host_config
        )
        api.start(created["Id"])


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def measure(url: str, repeat: int) -> dict[str, float]:
    variables = load_profile().variables
    collector = collector_for(TargetKind.DOCKER)
    spec = TargetSpec(url=url)
    samples: dict[str, list[float]] = {"containers": [], "with processes": [], "floor": []}
    with DockerTarget(spec) as target:

        def collect(*names: str) -> None:
            facts = collector.collect(target, set(names), variables)
            assert set(facts) == set(names), sorted(facts)
            assert all(f.error is None for f in facts.values()), [f.error for f in facts.values()]
            processes = facts.get("docker.processes")
            assert processes is None or all(i["processes"] for i in processes.data)

        def floor() -> None:
            for entry in target.api.containers():
                target.api.top(entry["Id"])

        for _ in range(repeat):
            samples["containers"].append(timed(lambda: collect("docker.containers")))
            samples["with processes"].append(
                timed(lambda: collect("docker.containers", "docker.processes"))
            )
            samples["floor"].append(timed(floor))
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sizes", default="20,100")
    parser.add_argument("--write", action="store_true", help="append to perf/RESULTS.md")
    options = parser.parse_args()
    rows = []
    load_before = os.getloadavg()[0]
    with (
        tempfile.TemporaryDirectory(prefix="auditor-perf-top-", dir="/tmp") as tmp,
        dockerd_server(Path(tmp)) as daemon,
    ):
        image = busybox_image(daemon.base_url)
        api = docker.APIClient(base_url=daemon.base_url, version="auto", timeout=120)
        have = 0
        for size in (int(s) for s in options.sizes.split(",")):
            start_containers(api, image, have, size)
            have = size
            rows.append((size, measure(f"docker://{daemon.base_url}", options.repeat)))
            sys.stderr.write(f"{size} running containers measured\n")
        for entry in api.containers(all=True):
            api.remove_container(entry["Id"], force=True)
        api.close()
    table = render(rows, options.repeat, (load_before, os.getloadavg()[0]))
    sys.stdout.write(table)
    if options.write:
        with (ROOT / "perf" / "RESULTS.md").open("a", encoding="utf-8") as out:
            out.write("\n" + table)


def render(rows: list[tuple[int, dict[str, float]]], repeat: int, load: tuple[float, float]) -> str:
    lines = [
        "## docker.processes: the cost of reading running containers' processes "
        f"({datetime.date.today().isoformat()})",
        "",
        f"`python perf/docker_top_perf.py --repeat {repeat}` on {platform.node()} "
        f"({os.cpu_count()} cores, Python {platform.python_version()}), load average "
        f"{load[0]:.1f} before, {load[1]:.1f} after. Medians of {repeat} repeats, in this "
        "process, private dockerd, all containers running.",
        "",
        "| running containers | docker.containers s | + docker.processes s | ratio | "
        "floor: sequential top s | processes vs floor |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for size, times in rows:
        base, both, floor = times["containers"], times["with processes"], times["floor"]
        lines.append(
            f"| {size} | {base:.3f} | {both:.3f} | {both / base:.2f} | {floor:.3f} | "
            f"{(both - base) / floor:.2f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
