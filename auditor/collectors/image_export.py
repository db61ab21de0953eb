"""Reading the layers an audit needs, and only those, out of the Engine API's image export.

The Engine API exports whole images, never one layer: `GET /images/get?names=A&names=B` is
one `docker save` tar of images A and B holding each layer they share once. So the images
to export are the fewest that hold every layer not in the cache (`images_to_export`), and
the export is streamed member by member: a layer already known is skipped unread by the
scan (tarfile reads past it), a missing one is scanned in one pass within its own bounds,
and the stream is closed as soon as the last missing layer is done.

A layer is recognised before its bytes are read:
- OCI layout (Docker 25 and later): `blobs/sha256/<digest>`, the digest of an uncompressed
  layer being its diff_id;
- the legacy layout (Docker 24 and earlier): `<v1 id>/layer.tar`, preceded by `<v1 id>/json`.
  The v1 id is a sha256 the daemon derives from that json and the layer's chain id
  (moby's `v1.CreateID`), so the candidate chain ids of the exported images are tried
  against it (`_legacy_diff_id`).
A member recognised neither way (a compressed blob, a layout drift) is scanned as it comes
and placed by manifest.json at the end of the export: slower, never wrong.

Every layer read is hashed as it passes: findings are kept for other audits (the layer
cache is shared by targets and workers) only when the content is the layer its diff_id
names, so a daemon cannot vouch for a layer with other bytes. A compressed blob cannot be
checked that way: its findings serve this audit and are not cached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tarfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from auditor.collectors.docker_image import (
    BoundedReader,
    LayerFindings,
    ScanLimits,
    ScanStopped,
    scan_layer_tar,
)

log = logging.getLogger(__name__)

MAX_JSON_BYTES = 4 * 1024 * 1024  # of a legacy layer's json or the manifest
BOUND_HINT = "raise docker_image_scan_max_mib / docker_image_scan_timeout"
_BLOBS = "blobs/sha256/"


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """The chain id of each layer of an image (the OCI image spec's ChainID): the first
    layer's diff_id, then sha256 of "<chain id below> <diff_id>"."""
    chains: list[str] = []
    for diff_id in diff_ids:
        if not chains:
            chains.append(diff_id)
        else:
            digest = hashlib.sha256(f"{chains[-1]} {diff_id}".encode()).hexdigest()
            chains.append(f"sha256:{digest}")
    return chains


def images_to_export(
    images: Mapping[str, Sequence[str]],
    missing: Iterable[str],
    sizes: Mapping[str, int] | None = None,
) -> list[str]:
    """Few images whose export holds every layer in `missing`; `images` maps an image id to
    its diff_ids. Greedily the image holding most missing layers first, the smallest (by
    `sizes`) of those: a daemon before Docker 25 prepares an image's whole export, whatever
    part of it is read."""
    left = set(missing)
    size = sizes or {}
    chosen: list[str] = []
    while left:
        best = max(sorted(images), key=lambda i: (len(left & set(images[i])), -size.get(i, 0)))
        found = left & set(images[best])
        if not found:
            break  # a layer no image has: reported as missing from the export
        chosen.append(best)
        left -= found
    return chosen


@dataclass(frozen=True)
class ExportPlan:
    """The images in one export (id -> diff_ids, bottom first) and the layers to scan."""

    images: Mapping[str, Sequence[str]]
    wanted: frozenset[str]


@dataclass
class ExportRead:
    """What one export gave: findings by diff_id, the layers that have none (diff_id -> why:
    a bound, an unreadable tar, content that is not the layer's digest), the layers the export
    did not hold, those whose content could not be checked against their diff_id (compressed
    blobs: used, never cached), and the bytes taken off the connection."""

    layers: dict[str, LayerFindings] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    missing: set[str] = field(default_factory=set)
    unverified: set[str] = field(default_factory=set)  # in `layers`, content not checked
    bytes_read: int = 0


class _Counting:
    """A read-only file over `read(n)` that counts what passes."""

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self._read = read
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._read(size if size is not None and size >= 0 else 1 << 20)
        self.count += len(data)
        return data


def read_export(
    read: Callable[[int], bytes],
    plan: ExportPlan,
    limits: ScanLimits,
    clock: Callable[[], float] = time.monotonic,
) -> ExportRead:
    """Stream one export (`read(n)` gives its bytes) and scan the wanted layers, each at most
    once; return as soon as none is left."""
    return _ExportReader(plan, limits, clock).run(read)


class _ExportReader:
    def __init__(self, plan: ExportPlan, limits: ScanLimits, clock: Callable[[], float]):
        self.plan = plan
        self.limits = limits
        self.clock = clock
        self.pending = set(plan.wanted)
        self.result = ExportRead()
        self.known = {d for diff_ids in plan.images.values() for d in diff_ids}
        self.chains: dict[str, str] = {}
        for diff_ids in plan.images.values():
            self.chains.update(zip(chain_ids(diff_ids), diff_ids, strict=True))
        self.v1_ids: dict[str, str | None] = {}  # legacy directory -> diff_id (None: unknown)
        # member -> (findings or why none, sha256 of the member)
        self.unplaced: dict[str, tuple[LayerFindings | str, str]] = {}

    def run(self, read: Callable[[int], bytes]) -> ExportRead:
        stream = _Counting(read)
        if self.pending:
            with tarfile.open(fileobj=stream, mode="r|") as outer:  # type: ignore[call-overload]
                for member in outer:
                    if member.isreg():
                        self._member(outer, member)
                    if not self.pending:
                        break  # every wanted layer is done: the rest is not read
        self.result.missing = self.pending
        self.result.bytes_read = stream.count
        return self.result

    def _member(self, outer: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        name = member.name
        if name == "manifest.json":
            self._place(self._small(outer, member))
            return
        directory, _, base = name.rpartition("/")
        if base == "json" and directory and "/" not in directory:
            self.v1_ids[directory] = _legacy_diff_id(
                self._small(outer, member), directory, self.chains
            )
            return
        if base == "layer.tar":
            diff_id = self.v1_ids.get(directory)
        elif name.startswith(_BLOBS):
            digest = "sha256:" + name[len(_BLOBS) :]
            diff_id = digest if digest in self.known else None
        else:
            return
        if diff_id is not None:
            if diff_id in self.pending:
                self._scan(outer, member, diff_id)
            return
        log.debug("export member %s: layer not recognised before reading it", name)
        self._scan_unplaced(outer, member)

    def _small(self, outer: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
        handle = outer.extractfile(member)
        return handle.read(MAX_JSON_BYTES) if handle is not None else b""

    def _layer(
        self, outer: tarfile.TarFile, member: tarfile.TarInfo
    ) -> tuple[LayerFindings | str, str] | None:
        """Scan one member within the bounds: its findings (or why there are none) and the
        sha256 of all its bytes (the rest read unscanned after the layer's end)."""
        handle = outer.extractfile(member)
        if handle is None:
            return None
        digest = hashlib.sha256()

        def hashed(size: int) -> bytes:
            data = handle.read(size)
            digest.update(data)
            return data

        reader = BoundedReader(hashed, self.limits, self.clock)
        try:
            found: LayerFindings | str = scan_layer_tar(reader, self.limits)
        except ScanStopped as stop:
            return f"{stop} after {reader.bytes_read} bytes of the layer; {BOUND_HINT}", ""
        while hashed(1 << 20):
            pass
        return found, "sha256:" + digest.hexdigest()

    def _scan(self, outer: tarfile.TarFile, member: tarfile.TarInfo, diff_id: str) -> None:
        self.pending.discard(diff_id)
        try:
            scanned = self._layer(outer, member)
        except tarfile.TarError as exc:
            self.result.failed[diff_id] = f"the layer is not a readable tar: {exc}"
            return
        if scanned is not None:
            self._keep(diff_id, *scanned)

    def _keep(self, diff_id: str, found: LayerFindings | str, digest: str) -> None:
        if isinstance(found, str):
            self.result.failed[diff_id] = found
        elif digest == diff_id:
            self.result.layers[diff_id] = found
        else:  # a daemon's word is not enough for findings that other audits will reuse
            self.result.failed[diff_id] = (
                f"the layer's content does not match its digest {diff_id[:19]}… (it is "
                f"{digest[:19]}…): not trusted"
            )

    def _scan_unplaced(self, outer: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        try:
            scanned = self._layer(outer, member)
        except tarfile.TarError as exc:
            if member.name.endswith("/layer.tar"):
                self.unplaced[member.name] = (f"the layer is not a readable tar: {exc}", "")
            return  # else an OCI config, manifest or index blob: not a layer
        if scanned is not None:
            self.unplaced[member.name] = scanned

    def _place(self, raw: bytes) -> None:
        """Give the members scanned before they were recognised their diff_ids, from the
        manifest: each image's `Layers`, bottom first, are its RootFS.Layers."""
        for entry in _manifest(raw):
            config = str(entry.get("Config") or "")
            image = "sha256:" + config.removeprefix(_BLOBS).removesuffix(".json")
            diff_ids = self.plan.images.get(image)
            layers = entry.get("Layers")
            if diff_ids is None or not isinstance(layers, list) or len(layers) != len(diff_ids):
                continue
            for member, diff_id in zip(layers, diff_ids, strict=True):
                scanned = self.unplaced.get(str(member))
                if scanned is None or diff_id not in self.pending:
                    continue
                self.pending.discard(diff_id)
                found, digest = scanned
                if isinstance(found, LayerFindings) and digest != diff_id:
                    # a compressed blob: its findings serve this audit, never the cache
                    self.result.unverified.add(diff_id)
                    self.result.layers[diff_id] = found
                else:
                    self._keep(diff_id, found, digest)


def _manifest(raw: bytes) -> list[dict[str, Any]]:
    try:
        entries = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nesting a daemon made too deep
        return []
    if not isinstance(entries, list):
        return []
    return [entry for entry in entries if isinstance(entry, dict)]


def _legacy_diff_id(raw: bytes, v1_id: str, chains: Mapping[str, str]) -> str | None:
    """The diff_id of the legacy layer `<v1_id>/layer.tar`, from its `<v1_id>/json`.

    The daemon wrote that json as Go's json.Marshal of the layer's v1 image with `id`,
    `parent` (hex) and `os` added, after taking the id as the sha256 of the same object
    without them, plus `layer_id` (the chain id) and `parent` ("sha256:<hex>"), re-marshalled
    as a map (keys sorted, values verbatim). `os` was part of it for an image's top layer
    only. The raw values are reused as written, so Go's escaping needs no imitation.
    """
    fields = _top_level_values(raw)
    if fields is None:
        return None
    parent_raw = fields.get("parent")
    base = {k: v for k, v in fields.items() if k not in ("id", "parent")}
    if parent_raw is not None:
        try:
            base["parent"] = json.dumps("sha256:" + str(json.loads(parent_raw)))
        except ValueError:
            return None
    for variant in ({k: v for k, v in base.items() if k != "os"}, base):
        keys = sorted([*variant, "layer_id"])
        at = keys.index("layer_id")
        head = "{" + "".join(f"{json.dumps(k)}:{variant[k]}," for k in keys[:at])
        tail = "".join(f",{json.dumps(k)}:{variant[k]}" for k in keys[at + 1 :]) + "}"
        prefix = hashlib.sha256(f'{head}"layer_id":'.encode())
        for chain, diff_id in chains.items():
            candidate = prefix.copy()
            candidate.update(f'"{chain}"{tail}'.encode())
            if candidate.hexdigest() == v1_id:
                return diff_id
    return None


def _top_level_values(raw: bytes) -> dict[str, str] | None:
    """An object's keys and the raw JSON text of each value; None when `raw` is no object."""
    try:
        text = raw.decode("utf-8")
        decoder = json.JSONDecoder()
        if not text.startswith("{"):
            return None
        values: dict[str, str] = {}
        pos = 1
        while text[pos] != "}":
            key, pos = decoder.raw_decode(text, pos)
            if text[pos] != ":" or not isinstance(key, str):
                return None
            _, end = decoder.raw_decode(text, pos + 1)
            values[key] = text[pos + 1 : end]
            pos = end + 1 if text[end] == "," else end
        return values
    except (ValueError, IndexError, RecursionError):  # not an object, or nested too deep
        return None
