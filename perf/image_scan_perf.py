"""Image content scan performance (issue 19): auditor's Docker audit with content scanning on,
side by side with docker-bench-security and `docker save`, on one private dockerd.

The scenario is built offline on a dockerd started here (tests/servers/dockerd.py): the busybox
test image, two images built on it (a hardened one and one with planted secrets in its files),
and the Debian 12 image with openssh-server that tests/servers/debian.py debootstraps and
`docker import`s; 26 containers over them with varied settings (one in ten running). Then, in
one run of this script, so that the ratios hold on a busy machine:

1. docker-bench-security (its upstream script, from a checkout given with --docker-bench: a
   directory or a bare git repository; nothing of it is kept) with DOCKER_HOST set;
2. `auditor run` with the full profile against the daemon, `--no-store`, first with an empty
   per-user cache (fresh XDG directories), then a second time with the cache the first left;
3. `docker save DEBIAN | cat > /dev/null`, the export the content scan reads, and the scan of
   that image alone in-process: in full, with every rule run one by one instead of the
   Hyperscan prefilter, and the tar walk with no pattern at all (what reading costs);
4. 200 containers over 10 images (six more images with a distinct layer each), first and
   second run;
5. how the first and second run, and the content scan of every image with no cache (in this
   process, without the rest of the audit's noise), grow with the number of distinct layers:
   images of five 1 MiB text layers each are added step by step.

Usage: python perf/image_scan_perf.py [--docker-bench PATH] [--repeat N] [--write]
(--write appends the tables to perf/RESULTS.md). Needs root, dockerd, docker.io and
debootstrap, like the integration tests; the Debian root file system is cached under
AUDITOR_TEST_CACHE.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import random
import shutil
import statistics
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT))

import docker  # noqa: E402
from docker_scenario import build_context  # noqa: E402
from servers.debian import debian_image  # noqa: E402
from servers.dockerd import busybox_image, dockerd_server  # noqa: E402

from auditor.collectors import docker_image, image_layers, image_secrets  # noqa: E402

RUNNING_SHARE = 10  # one container in ten is started
LAYER_BYTES = 1024 * 1024  # each added layer: one text file of this size


def build(api: docker.APIClient, tag: str, dockerfile: str, files: dict[str, bytes]) -> str:
    """Build an image from a Dockerfile of COPY steps (no container runs, no network)."""
    context = build_context({"Dockerfile": dockerfile.encode(), **files})
    output = api.build(fileobj=context, custom_context=True, tag=tag, rm=True, forcerm=True,
                       network_mode="none", decode=True)  # fmt: skip
    errors = [entry["error"] for entry in output if "error" in entry]
    if errors:
        raise SystemExit(f"building {tag} failed: {errors[0]}")
    return tag


def text_blob(seed: int, size: int) -> bytes:
    """Configuration-like text that no rule matches: the scan reads and searches all of it."""
    chooser = random.Random(seed)
    words = ["".join(chooser.choices(string.ascii_lowercase, k=chooser.randint(3, 10)))
             for _ in range(2000)]  # fmt: skip
    lines, length = [], 0
    while length < size:
        line = f"{chooser.choice(words)}_{chooser.choice(words)} = {' '.join(chooser.choices(words, k=8))}\n"  # noqa: E501
        lines.append(line)
        length += len(line)
    return "".join(lines).encode()[:size]


def base_images(client: docker.DockerClient) -> dict[str, str]:
    """The four images of the issue's scenario, by role."""
    api = client.api
    busybox = busybox_image(client)
    hardened = build(api, "perf/hardened:1",
                     f"FROM {busybox}\nCOPY app.conf /app/app.conf\nUSER 65534:65534\n"
                     "HEALTHCHECK CMD true\n", {"app.conf": text_blob(1, 200_000)})  # fmt: skip
    key = "AKIA" + "".join(random.Random(2).choices(string.ascii_uppercase + string.digits, k=16))
    leaky = build(api, "perf/leaky:1",
                  f"FROM {busybox}\nCOPY aws.env /app/aws.env\nCOPY app.conf /app/app.conf\n",
                  {"aws.env": f"AWS_ACCESS_KEY_ID={key}\n".encode(),
                   "app.conf": text_blob(3, 100_000)})  # fmt: skip
    return {"busybox": busybox, "hardened": hardened, "leaky": leaky,
            "debian": debian_image(client)}  # fmt: skip


def add_containers(api: docker.APIClient, images: list[str], start: int, stop: int) -> None:
    """Containers start..stop-1 over images in turn: every tenth running, every other one
    hardened, every third with a host mount or host PID namespace."""
    for index in range(start, stop):
        hardened = index % 2 == 0
        host_config = api.create_host_config(
            network_mode="none",
            read_only=hardened,
            cap_drop=["ALL"] if hardened else None,
            cap_add=None if hardened or index % 3 else ["NET_ADMIN"],
            security_opt=["no-new-privileges"] if hardened else None,
            mem_limit="32m" if hardened else None,
            pids_limit=32 if hardened else None,
            pid_mode="host" if index % 6 == 1 else None,
            binds=["/etc:/host-etc:ro"] if index % 6 == 3 else None,
        )
        created = api.create_container(
            images[index % len(images)], ["sleep", "3600"], name=f"perf-{index:04d}",
            labels={"perf.index": str(index)}, environment={"APP_MODE": "perf"},
            host_config=host_config,
        )  # fmt: skip
        if index % RUNNING_SHARE == 0:
            api.start(created["Id"])


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


@contextmanager
def docker_bench_checkout(source: Path, work: Path) -> Iterator[Path]:
    """A working copy of docker-bench-security: the directory itself, or an export of a bare
    git repository (removed afterwards)."""
    if (source / "docker-bench-security.sh").exists():
        yield source
        return
    target = work / "docker-bench-security"
    target.mkdir()
    archive = subprocess.run(["git", "--git-dir", str(source), "archive", "HEAD"],
                             capture_output=True, check=True, timeout=60)  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True, timeout=60)
    try:
        yield target
    finally:
        shutil.rmtree(target)


def docker_bench(checkout: Path, host: str, log: Path) -> float:
    """docker-bench-security's full run against the daemon at host."""
    env = {**os.environ, "DOCKER_HOST": host}

    def run() -> None:
        done = subprocess.run(["bash", "docker-bench-security.sh", "-l", str(log)], cwd=checkout,
                              env=env, capture_output=True, timeout=1800, check=False)  # fmt: skip
        if done.returncode != 0 or not log.exists():
            raise SystemExit(f"docker-bench-security failed: {done.stderr.decode()[-500:]}")

    return timed(run)


def auditor_run(url: str, report: Path, home: Path) -> float:
    """`auditor run` of the full profile against url, with home as the per-user directories."""
    env = {**os.environ, "XDG_CACHE_HOME": str(home / "cache"),
           "XDG_DATA_HOME": str(home / "data"), "PYTHONPATH": str(ROOT)}  # fmt: skip

    def run() -> None:
        done = subprocess.run(
            [sys.executable, "-m", "auditor", "run", "--quiet", "--no-store", "--target", url,
             "--report", f"json:{report}"],
            capture_output=True, text=True, timeout=900, check=False, env=env,
        )  # fmt: skip
        if done.returncode not in (0, 1):
            raise SystemExit(f"auditor run failed ({done.returncode}): {done.stderr[-2000:]}")

    return timed(run)


def first_and_second(url: str, work: Path, repeat: int) -> tuple[float, float]:
    """Median of `repeat` first runs (each with empty per-user directories) and of the second
    runs that follow each."""
    firsts, seconds = [], []
    for attempt in range(repeat):
        home = work / f"home-{time.monotonic_ns()}-{attempt}"
        firsts.append(auditor_run(url, work / "first.json", home))
        seconds.append(auditor_run(url, work / "second.json", home))
        shutil.rmtree(home)
    return statistics.median(firsts), statistics.median(seconds)


def docker_save(host: str, image: str) -> float:
    """The floor: the daemon exports the image to a pipe that discards it."""
    command = f"docker -H {host} save {image} | cat > /dev/null"
    return timed(lambda: subprocess.run(command, shell=True, check=True, timeout=600))


def scan_images(base_url: str, names: list[str]) -> list[dict[str, Any]]:
    """The content scan of images as the collector does it with no layer cache: one export
    streamed from the Engine API into the layer scanner, each distinct layer read once."""
    limits = docker_image.ScanLimits(max_bytes=4 * 1024**3, max_seconds=600)
    api = docker.APIClient(base_url=base_url, version="auto", timeout=120)

    def export(image_ids: list[str]) -> Any:
        response = api._get(api._url("/images/get"), params={"names": image_ids}, stream=True)
        api._raise_for_status(response)
        return response

    try:
        inspected = {i["Id"]: i for i in (api.inspect_image(name) for name in names)}
        images = image_layers.ImageLayers([{"Id": iid} for iid in inspected], inspected)
        scanned = image_layers.LayerSource(None, limits, export).findings(images.layers_of)
        found = images.items(scanned)
        stopped = [item.get("_error") for item in found if not item.get("complete")]
        if stopped:
            raise SystemExit(f"the scan stopped: {stopped[0]}")
        return found
    finally:
        api.close()


def scan_variants(base_url: str, image: str, repeat: int) -> dict[str, float]:
    """The scan of one image alone: as shipped, with every rule run one by one, and with no
    pattern at all (the export, the tar walk and the file reads), each repeat after the
    floor, `docker save` of the image."""
    shipped = docker_image.find_secrets
    variants: dict[str, Callable[[str, bytes], list[tuple[str, str]]]] = {
        "scan": shipped,
        "every rule": lambda p, c: image_secrets.find_secrets(p, c, use_prefilter=False),
        "no pattern": lambda p, c: [],
    }
    times: dict[str, list[float]] = {name: [] for name in ("save", *variants)}
    try:
        for _ in range(repeat):
            times["save"].append(docker_save(base_url, image))
            for name, finder in variants.items():
                docker_image.find_secrets = finder  # type: ignore[assignment]
                times[name].append(timed(lambda: scan_images(base_url, [image])))
    finally:
        docker_image.find_secrets = shipped  # type: ignore[assignment]
    return {name: statistics.median(values) for name, values in times.items()}


def scan_all(base_url: str, names: list[str], repeat: int) -> float:
    """Median time of the content scan of every image, no cache, in this process."""
    return statistics.median(timed(lambda: scan_images(base_url, names)) for _ in range(repeat))


def distinct_layers(api: docker.APIClient) -> tuple[int, float]:
    """Distinct layers of the daemon's images and their size in MB."""
    layers: set[str] = set()
    for image in api.images():
        layers.update(api.inspect_image(image["Id"])["RootFS"].get("Layers") or [])
    size = sum(image["Size"] for image in api.images()) / 1e6
    return len(layers), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docker-bench", type=Path, help="docker-bench-security checkout")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--layer-steps", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="append to perf/RESULTS.md")
    options = parser.parse_args()
    numbers: dict[str, Any] = {"load": [os.getloadavg()[0]]}
    with tempfile.TemporaryDirectory(prefix="auditor-perf-scan-", dir="/tmp") as tmp:
        work = Path(tmp)
        (work / "dockerd").mkdir()
        with dockerd_server(work / "dockerd") as daemon:
            client = docker.DockerClient(base_url=daemon.base_url, timeout=300)
            try:
                measure(client, daemon.base_url, work, options, numbers)
            finally:
                client.close()
    numbers["load"].append(os.getloadavg()[0])
    table = render(numbers, options.repeat)
    sys.stdout.write(table)
    if options.write:
        with (ROOT / "perf" / "RESULTS.md").open("a", encoding="utf-8") as out:
            out.write("\n" + table)


def measure(client: docker.DockerClient, base_url: str, work: Path,
            options: argparse.Namespace, numbers: dict[str, Any]) -> None:  # fmt: skip
    """Every timing of the script, in the order the docstring gives."""
    api, url = client.api, f"docker://{base_url}"
    images = base_images(client)
    debian = images["debian"]
    numbers["debian_mb"] = api.inspect_image(debian)["Size"] / 1e6
    add_containers(api, list(images.values()), 0, 26)
    auditor_run(url, work / "warm.json", work / "home-warm")  # warm the daemon's caches once
    if options.docker_bench:
        with docker_bench_checkout(options.docker_bench, work) as checkout:
            numbers["bench"] = docker_bench(checkout, base_url, work / "bench.log")
    numbers["26"] = first_and_second(url, work, options.repeat)
    numbers["layers_26"] = distinct_layers(api)
    numbers["alone"] = scan_variants(base_url, debian, options.repeat)
    numbers["save"] = numbers["alone"]["save"]
    sys.stderr.write(f"26 containers: {numbers['26']}, alone {numbers['alone']}\n")
    names = list(images.values())
    for index in range(6):
        names.append(build(api, f"perf/extra:{index}",
                           f"FROM {images['busybox']}\nCOPY data /srv/data\n",
                           {"data": text_blob(100 + index, LAYER_BYTES)}))  # fmt: skip
    add_containers(api, names, 26, 200)
    numbers["200"] = first_and_second(url, work, options.repeat)
    numbers["layers_200"] = distinct_layers(api)
    every = [image["Id"] for image in api.images()]
    growth = [(*numbers["layers_200"], *numbers["200"], scan_all(base_url, every, options.repeat))]
    for step in range(options.layer_steps):
        files = {f"l{i}": text_blob(1000 * (step + 1) + i, LAYER_BYTES) for i in range(5)}
        copies = "".join(f"COPY l{i} /srv/l{i}\n" for i in range(5))
        build(api, f"perf/layers:{step}", f"FROM {images['busybox']}\n{copies}", files)
        every = [image["Id"] for image in api.images()]
        growth.append((*distinct_layers(api), *first_and_second(url, work, options.repeat),
                       scan_all(base_url, every, options.repeat)))  # fmt: skip
        sys.stderr.write(f"layers: {growth[-1]}\n")
    numbers["growth"] = growth


def render(numbers: dict[str, Any], repeat: int) -> str:
    today = datetime.date.today().isoformat()
    first, second = numbers["26"]
    bench = numbers.get("bench")
    alone = numbers["alone"]
    lines = [
        "## Image content scan: auditor vs docker-bench-security and docker save "
        "(perf/image_scan_perf.py)",
        "",
        f"{today}, this machine: {os.cpu_count()} cores, {platform.platform()}, Python "
        f"{platform.python_version()}, a private dockerd on a unix socket. Scan rules "
        f"{image_secrets.SCAN_RULES_VERSION}, Hyperscan prefilter "
        f"{'on' if image_secrets._prefilter() else 'absent'}. `auditor run --no-store` of the "
        f"full profile, content scanning on; first run with empty per-user directories, "
        f"second run after it; medians of {repeat}. 1-minute load average "
        f"{numbers['load'][0]:.1f} before, {numbers['load'][1]:.1f} after.",
        "",
        f"26 containers, 4 images ({numbers['layers_26'][0]} distinct layers, "
        f"{numbers['layers_26'][1]:.0f} MB), the Debian image {numbers['debian_mb']:.0f} MB:",
        "",
        "| what | time | docker-bench-security / this |",
        "|---|---:|---:|",
    ]
    ratio: Callable[[float], str] = lambda t: f"{bench / t:.1f}x" if bench else "not run"  # noqa: E731
    lines += [
        f"| docker-bench-security 1.6.0 | {bench:.2f} s | 1 |" if bench
        else "| docker-bench-security | not run (no --docker-bench) | |",
        f"| auditor, first run | {first:.2f} s | {ratio(first)} |",
        f"| auditor, second run | {second:.2f} s | {ratio(second)} |",
        "",
        "| the Debian image alone | time | / docker save |",
        "|---|---:|---:|",
        f"| `docker save \\| cat > /dev/null` | {numbers['save']:.2f} s | 1 |",
    ]  # fmt: skip
    for name, label in (("scan", "content scan (Hyperscan prefilter, as shipped)"),
                        ("every rule", "content scan, every rule one by one"),
                        ("no pattern", "export + tar walk + reads, no pattern")):  # fmt: skip
        lines.append(f"| {label} | {alone[name]:.2f} s | {alone[name] / numbers['save']:.2f} |")
    lines += [
        "",
        "| containers | images | distinct layers | image MB | first run | second run "
        "| scan of every image, no cache, in-process |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for index, (layers, size, run1, run2, scan) in enumerate(numbers["growth"]):
        lines.append(f"| 200 | {10 + index} | {layers} | {size:.0f} | {run1:.2f} s | {run2:.2f} s "
                     f"| {scan:.2f} s |")  # fmt: skip
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
