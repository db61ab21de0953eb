"""Image content scan with the layer cache: what the daemon's export costs, and the scan with
an empty cache, a warm one, and a warm one missing only an image's top layer.

A private dockerd is started here (tests/servers/dockerd.py) with three images built offline:
`perf/base`, one layer of about --mib MiB of generated files (text with a few planted
secret-shaped lines, and binary blobs), `perf/app` on top of it (one more small layer) and
the busybox test image. Each case is timed in one process, alternating with the floor, the
daemon's export of perf/app (`GET /images/get?names=…` read to the end and dropped, what
`docker save perf/app | cat > /dev/null` costs), so that the ratios hold on a busy machine:

- export: the floor itself, and its time to the first byte (the daemon's preparation);
- no cache: docker.image_contents with no layer cache (every layer read, as before issue 19);
- empty cache: the first audit with the cache on (every layer read, then kept);
- warm cache: the second audit (nothing read from the daemon);
- top layer missing: the warm cache without perf/app's top layer (one export, stopped once
  that layer is done; the layers before it in the tar pass unscanned).

Usage: python perf/layer_cache_perf.py [--mib 140] [--repeat 3] [--write]
(--write appends the table to perf/RESULTS.md). Needs root and docker.io, like the tests.
"""

from __future__ import annotations

import argparse
import datetime
import io
import os
import platform
import random
import statistics
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import docker  # noqa: E402
from servers.dockerd import busybox_image, dockerd_server  # noqa: E402
from sqlalchemy import create_engine, delete  # noqa: E402

from auditor.collectors.docker import DockerCollector  # noqa: E402
from auditor.config import TargetSpec  # noqa: E402
from auditor.store.schema import image_layers  # noqa: E402
from auditor.targets.docker import DockerTarget  # noqa: E402

WORDS = (b"the", b"of", b"and", b"to", b"in", b"is", b"for", b"on", b"with", b"config",
         b"server", b"port", b"user", b"name", b"value", b"true", b"false", b"path")  # fmt: skip


def generated_rootfs(mib: int, seed: int = 19) -> bytes:
    """A root file system of about `mib` MiB: three files of text for one of binary, 4-64 KiB
    each, and a secret-shaped line in one text file of fifty."""
    rng = random.Random(seed)
    buffer = io.BytesIO()
    total, index = 0, 0
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        while total < mib * 1024 * 1024:
            size = rng.randint(4, 64) * 1024
            if index % 4 == 3:
                data = rng.randbytes(size)
                name = f"usr/lib/perf/blob{index:05d}.so"
            else:
                words = rng.choices(WORDS, k=size // 5)
                lines = [b" ".join(words[i : i + 12]) for i in range(0, len(words), 12)]
                if index % 50 == 0:
                    lines.append(b"aws_key = AKIA" + f"{index:016d}".encode().replace(b"0", b"Q"))
                data = b"\n".join(lines)[:size]
                name = f"usr/share/perf/doc{index:05d}.txt"
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
            total += len(data)
            index += 1
    return buffer.getvalue()


def build_images(base_url: str, mib: int) -> None:
    client = docker.DockerClient(base_url=base_url, timeout=600)
    try:
        busybox_image(client)
        client.api.import_image_from_data(generated_rootfs(mib), repository="perf/base", tag="1")
        context = io.BytesIO()
        with tarfile.open(fileobj=context, mode="w") as tar:
            for name, data in (("Dockerfile", b"FROM perf/base:1\nCOPY app.conf /etc/app.conf\n"),
                               ("app.conf", b"mode = perf\n")):  # fmt: skip
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        context.seek(0)
        for chunk in client.api.build(fileobj=context, custom_context=True, tag="perf/app:1",
                                      decode=True):  # fmt: skip
            if "error" in chunk:
                raise RuntimeError(chunk["error"])
    finally:
        client.close()


def export_floor(base_url: str) -> tuple[float, float, int]:
    """Seconds to the first byte and to the end of the export of perf/app, and its bytes."""
    api = docker.APIClient(base_url=base_url, timeout=600)
    try:
        started = time.perf_counter()
        response = api._get(api._url("/images/get"), params={"names": ["perf/app:1"]},
                            stream=True)  # fmt: skip
        first = response.raw.read(1)
        ttfb = time.perf_counter() - started
        size = len(first)
        while chunk := response.raw.read(1 << 20):
            size += len(chunk)
        response.close()
        return ttfb, time.perf_counter() - started, size
    finally:
        api.close()


def scan(base_url: str, cache: str | None) -> list[dict[str, Any]]:
    spec = TargetSpec(url=f"docker://{base_url}", layer_cache=cache)
    with DockerTarget(spec) as target:
        fact = DockerCollector().collect(target, {"docker.image_contents"}, {})
    contents = fact["docker.image_contents"]
    if contents.error is not None:
        raise RuntimeError(contents.error)
    return list(contents.data)


def drop_top_layer(base_url: str, cache: str) -> None:
    api = docker.APIClient(base_url=base_url, timeout=60)
    top = api.inspect_image("perf/app:1")["RootFS"]["Layers"][-1]
    api.close()
    engine = create_engine(cache)
    with engine.begin() as conn:
        conn.execute(delete(image_layers).where(image_layers.c.diff_id == top))
    engine.dispose()


def timed(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def measure(base_url: str, workdir: Path, repeat: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {}
    ratios: dict[str, list[float]] = {}

    def add(case: str, seconds: float, floor: float) -> None:
        times.setdefault(case, []).append(seconds)
        ratios.setdefault(case, []).append(seconds / floor)

    for round_ in range(repeat):
        cache = f"sqlite:///{workdir / f'layers-{round_}.db'}"
        ttfb, floor, _ = export_floor(base_url)
        add("export of perf/app (floor)", floor, floor)
        add("export: time to first byte", ttfb, floor)
        cases: list[tuple[str, Callable[[], Any]]] = [
            ("no cache", lambda: scan(base_url, None)),
            ("empty cache (first audit)", lambda: scan(base_url, cache)),  # noqa: B023
            ("warm cache (second audit)", lambda: scan(base_url, cache)),  # noqa: B023
        ]
        for case, call in cases:
            add(case, timed(call), export_floor(base_url)[1])
        drop_top_layer(base_url, cache)
        add("warm cache, top layer missing", timed(lambda: scan(base_url, cache)),  # noqa: B023
            export_floor(base_url)[1])  # fmt: skip
    return {**{f"{k}|s": v for k, v in times.items()}, **{f"{k}|r": v for k, v in ratios.items()}}


def table(results: dict[str, list[float]], mib: int, size: int) -> str:
    cases = [k[:-2] for k in results if k.endswith("|s")]
    lines = [
        f"perf/app: {size / 1024 / 1024:.0f} MiB export ({mib} MiB generated base layer + "
        "one small layer), plus busybox",
        "",
        "| case | min s | median s | max s | ratio to the export (median) |",
        "|---|---:|---:|---:|---:|",
    ]
    for case in cases:
        s, r = results[f"{case}|s"], results[f"{case}|r"]
        lines.append(f"| {case} | {min(s):.3f} | {statistics.median(s):.3f} | {max(s):.3f} | "
                     f"{statistics.median(r):.3f} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=140)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="layer-perf-") as tmp:
        workdir = Path(tmp)
        (workdir / "dockerd").mkdir()
        with dockerd_server(workdir / "dockerd") as daemon:
            build_images(daemon.base_url, args.mib)
            _, _, size = export_floor(daemon.base_url)
            results = measure(daemon.base_url, workdir, args.repeat)
    text = table(results, args.mib, size)
    sys.stdout.write(text + "\n")
    if args.write:
        stamp = datetime.date.today().isoformat()
        header = (f"\n## Issue 19: image layer cache ({stamp})\n\n`python perf/layer_cache_perf.py "
                  f"--mib {args.mib} --repeat {args.repeat}` on {platform.processor() or 'x86_64'}"
                  f", {os.cpu_count()} cores, Python {platform.python_version()}.\n\n")  # fmt: skip
        with open(ROOT / "perf" / "RESULTS.md", "a", encoding="utf-8") as out:
            out.write(header + text + "\n")


if __name__ == "__main__":
    main()
