"""Image content scanning: secrets, set-id and world-writable files in an image's layers.

The image comes as the Engine API exports it (`GET /images/{name}/get`, the `docker save`
tar: legacy `<id>/layer.tar` entries or OCI `blobs/sha256/<digest>`), read through tarfile in
stream mode, the layer tars inside it streamed too: nothing is kept but the findings and the
paths of each layer (to tell which findings later layers replaced or deleted). Reading stops
at a byte and a time bound. A secret is reported by path, kind and keyed fingerprint, never
by value.
"""

from __future__ import annotations

import json
import posixpath
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from auditor.collectors.image_secrets import find_secrets


@dataclass(frozen=True)
class ScanLimits:
    """How much of one image is read: bytes of the export, seconds, and bytes per file whose
    content is searched for secrets (larger files are only checked for their mode)."""

    max_bytes: int = 512 * 1024 * 1024
    max_seconds: float = 60.0
    max_file_bytes: int = 1024 * 1024


class ScanStopped(Exception):
    """A bound was reached before the end of the image."""


class BoundedReader:
    """A read-only file over `read(n)` that stops at a byte count and a deadline."""

    def __init__(
        self,
        read: Callable[[int], bytes],
        limits: ScanLimits,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._limits = limits
        self._clock = clock
        self._deadline = clock() + limits.max_seconds
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        if self._clock() > self._deadline:
            raise ScanStopped(f"the {self._limits.max_seconds:g} s time bound was reached")
        if self.bytes_read >= self._limits.max_bytes:
            raise ScanStopped(
                f"the {self._limits.max_bytes / (1024 * 1024):g} MiB bound was reached"
            )
        want = self._limits.max_bytes - self.bytes_read
        if size is not None and size >= 0:
            want = min(want, size)
        data = self._read(want)
        self.bytes_read += len(data)
        return data


@dataclass
class _Layer:
    """What one layer holds: every path (to resolve overrides) and its flagged entries."""

    paths: set[str] = field(default_factory=set)
    whiteouts: list[str] = field(default_factory=list)  # deleted paths
    opaque: list[str] = field(default_factory=list)  # directories whose lower content is hidden
    setid: dict[str, str] = field(default_factory=dict)  # path -> mode
    writable: dict[str, str] = field(default_factory=dict)
    secrets: list[tuple[str, str, str]] = field(default_factory=list)  # path, kind, fingerprint
    files: int = 0
    unscanned: int = 0  # regular files too large to search


@dataclass
class ScanResult:
    """The findings of one image, before they are ordered by the image's layer list."""

    layers: dict[str, _Layer] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # layer member names, bottom first
    complete: bool = True
    stopped: str | None = None
    bytes_read: int = 0


def _normal(name: str) -> str:
    """A member name as an absolute path: "./usr/bin/" -> "/usr/bin"."""
    return posixpath.normpath("/" + name.lstrip("/"))


def _mode(member: tarfile.TarInfo) -> str:
    return f"{member.mode & 0o7777:04o}"


def _scan_layer(layer_tar: tarfile.TarFile, layer: _Layer, limits: ScanLimits) -> None:
    for member in layer_tar:
        path = _normal(member.name)
        directory, base = posixpath.split(path)
        if base == ".wh..wh..opq":
            layer.opaque.append(directory)
            continue
        if base.startswith(".wh."):
            layer.whiteouts.append(posixpath.join(directory, base[4:]))
            continue
        layer.paths.add(path)
        if member.isreg():
            layer.files += 1
            if member.mode & 0o6000:
                layer.setid[path] = _mode(member)
            if member.mode & 0o002:
                layer.writable[path] = _mode(member)
            if member.size > limits.max_file_bytes:
                layer.unscanned += 1
                continue
            handle = layer_tar.extractfile(member)
            if handle is not None:
                content = handle.read(limits.max_file_bytes)
                for kind, print_ in find_secrets(path, content):
                    layer.secrets.append((path, kind, print_))
        elif member.isdir() and member.mode & 0o002 and not member.mode & 0o1000:
            layer.writable[path] = _mode(member)


def _is_layer_name(name: str) -> bool:
    return name.endswith("/layer.tar") or name.startswith("blobs/")


def scan_export(stream: IO[bytes] | BoundedReader, limits: ScanLimits) -> ScanResult:
    """Stream a `docker save` archive and collect the findings of each layer."""
    result = ScanResult()
    try:
        with tarfile.open(fileobj=stream, mode="r|") as outer:  # type: ignore[call-overload]
            for member in outer:
                if not member.isreg():
                    continue
                if member.name == "manifest.json":
                    handle = outer.extractfile(member)
                    if handle is not None:
                        result.order = _layer_order(handle.read(4 * 1024 * 1024))
                    continue
                if not _is_layer_name(member.name):
                    continue
                handle = outer.extractfile(member)
                if handle is None:
                    continue
                layer = _Layer()
                try:
                    with tarfile.open(fileobj=handle, mode="r|*") as inner:
                        _scan_layer(inner, layer, limits)
                except tarfile.ReadError:
                    if layer.paths or layer.whiteouts:
                        raise  # a layer that broke off, not a JSON blob
                    continue  # an OCI config or manifest blob, not a layer
                result.layers[member.name] = layer
    except ScanStopped as stop:
        result.complete = False
        result.stopped = str(stop)
    if isinstance(stream, BoundedReader):
        result.bytes_read = stream.bytes_read
    if result.complete and not result.order and result.layers:
        result.complete = False
        result.stopped = "the export had no manifest.json listing its layers"
    return result


def _layer_order(raw: bytes) -> list[str]:
    try:
        manifest = json.loads(raw)
    except ValueError:
        return []
    if not isinstance(manifest, list) or not manifest or not isinstance(manifest[0], dict):
        return []
    layers = manifest[0].get("Layers") or []
    return [str(layer) for layer in layers]


def _hidden(path: str, by: _Layer) -> bool:
    """Whether layer `by` replaces or deletes `path` of a layer below it."""
    if path in by.paths:
        return True
    for gone in by.whiteouts:
        if path == gone or path.startswith(gone.rstrip("/") + "/"):
            return True
    return any(path.startswith(d.rstrip("/") + "/") for d in by.opaque)


def findings(result: ScanResult) -> dict[str, Any]:
    """The fact item of one scanned image (without its Id and tags). Example::

        {"complete": True, "bytes": 2160640, "layers": 2, "files": 14, "unscanned_files": 0,
         "secrets": [{"path": "/root/.ssh/id_ed25519", "kind": "private-key",
                      "fingerprint": "3f1c09ab52e7", "layer": 1, "in_final_image": False}],
         "setid_files": [{"path": "/bin/su", "mode": "4755", "layer": 0}],
         "world_writable": [{"path": "/opt/app/cache", "mode": "0777", "layer": 1}]}

    Secrets are listed from every layer, deleted later or not (a deleted file can still be
    extracted from its layer); set-id and world-writable entries only when still in the final
    file system. Layers are numbered bottom first.
    """
    names = [n for n in result.order if n in result.layers]
    names += sorted(n for n in result.layers if n not in names)
    layers = [result.layers[n] for n in names]
    secrets: list[dict[str, Any]] = []
    setid: list[dict[str, Any]] = []
    writable: list[dict[str, Any]] = []
    for index, layer in enumerate(layers):
        above = layers[index + 1 :]

        def final(path: str) -> bool:
            return not any(_hidden(path, upper) for upper in above)  # noqa: B023

        for path, kind, print_ in layer.secrets:
            secrets.append(
                {
                    "path": path,
                    "kind": kind,
                    "fingerprint": print_,
                    "layer": index,
                    "in_final_image": final(path),
                }
            )
        setid += [
            {"path": p, "mode": m, "layer": index}
            for p, m in sorted(layer.setid.items())
            if final(p)
        ]
        writable += [
            {"path": p, "mode": m, "layer": index}
            for p, m in sorted(layer.writable.items())
            if final(p)
        ]
    return {
        "complete": result.complete,
        "stopped": result.stopped,
        "bytes": result.bytes_read,
        "layers": len(layers),
        "files": sum(layer.files for layer in layers),
        "unscanned_files": sum(layer.unscanned for layer in layers),
        "secrets": secrets,
        "setid_files": setid,
        "world_writable": writable,
    }
