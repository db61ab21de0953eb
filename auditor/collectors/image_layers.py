"""docker.image_contents: each image's content findings, stacked from its layers' findings.

A layer's findings come from the layer cache (auditor.store.layers) when it has them, else
from one streamed export of the fewest images holding every layer it lacks
(auditor.collectors.image_export), and go into the cache once read. So a second audit of
unchanged images reads no image content, and a layer shared by many images is read once.
The cache is an optimisation: one that cannot be opened, read or written is a warning, and
the layers are read instead.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from auditor.collectors.docker_image import (
    SCAN_RULES_VERSION,
    LayerFindings,
    ScanLimits,
    image_findings,
)
from auditor.collectors.image_export import ExportPlan, images_to_export, read_export
from auditor.errors import AuditorError
from auditor.redact import data_home

if TYPE_CHECKING:
    from auditor.store.layers import LayerCache

log = logging.getLogger(__name__)


def user_cache_url() -> str:
    """SQLite at $XDG_CACHE_HOME/auditor/layers.db: the layer cache of runs stored nowhere."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return f"sqlite:///{Path(base) / 'auditor' / 'layers.db'}"


def cache_url(*, stored: bool, db: str | None) -> str:
    """The layer cache of a run: the database it is stored in (--db, AUDITOR_DB, else the
    default store, auditor.store.default_url), or for a run stored nowhere the user's cache."""
    if not stored:
        return user_cache_url()
    return db or os.environ.get("AUDITOR_DB") or f"sqlite:///{data_home() / 'auditor.db'}"


def limits_from(variables: Mapping[str, Any]) -> ScanLimits:
    """The scan's bounds per layer, from the profile's variables."""
    return ScanLimits(
        max_bytes=int(float(variables.get("docker_image_scan_max_mib", 512)) * 1024 * 1024),
        max_seconds=float(variables.get("docker_image_scan_timeout", 60)),
        max_file_bytes=int(float(variables.get("docker_image_scan_max_file_kib", 1024)) * 1024),
    )


def rules_of(limits: ScanLimits) -> str:
    """What a cached layer's findings depend on besides the layer: the scanner's rule set and
    the size above which a file is not searched."""
    return f"{SCAN_RULES_VERSION};max_file_bytes={limits.max_file_bytes}"


@dataclass
class Scanned:
    """The findings of the layers of a daemon's images, by diff_id; why a layer has none;
    which layers were read in this audit (not cached), which of those could not be checked
    against their digest (kept out of the cache), and how many exports it took."""

    layers: dict[str, LayerFindings] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    read: set[str] = field(default_factory=set)
    unverified: set[str] = field(default_factory=set)  # read, but not to be kept
    exports: int = 0


class LayerSource:
    """Findings for layers: from the cache at `cache_url` (None: no cache), else from an
    export that `export(image_ids)` opens (a response with `.raw.read` and `.close()`)."""

    def __init__(
        self,
        cache_url: str | None,
        limits: ScanLimits,
        export: Callable[[list[str]], Any],
        describe: Callable[[BaseException], str] = str,
    ) -> None:
        self.cache_url = cache_url
        self.limits = limits
        self.export = export
        self.describe = describe

    def findings(
        self, layers_of: Mapping[str, Sequence[str]], sizes: Mapping[str, int] | None = None
    ) -> Scanned:
        """The findings of every layer of the images (`layers_of`: image id -> diff_ids;
        `sizes`: image id -> bytes, to export the smallest images holding a missing layer)."""
        wanted = {d for diff_ids in layers_of.values() for d in diff_ids}
        scanned = Scanned()
        cache = self._open_cache() if wanted else None
        try:
            if cache is not None:
                scanned.layers.update(self._cached(cache, wanted))
            missing = wanted - set(scanned.layers)
            if missing:
                self._read(layers_of, missing, scanned, sizes)
            if cache is not None and scanned.read:
                kept = scanned.read - scanned.unverified
                fresh = {d: scanned.layers[d].to_json() for d in kept}
                self._keep(cache, fresh)
        finally:
            if cache is not None:
                cache.close()
        return scanned

    def _read(
        self,
        layers_of: Mapping[str, Sequence[str]],
        missing: set[str],
        scanned: Scanned,
        sizes: Mapping[str, int] | None,
    ) -> None:
        chosen = images_to_export(layers_of, missing, sizes)
        why = self._export_into({i: layers_of[i] for i in chosen}, missing, scanned)
        if why is not None and len(chosen) > 1:
            # One image removed since the list fails the whole request (404): each alone.
            for image in chosen:
                left = _left(missing & set(layers_of[image]), scanned)
                if left:
                    alone = self._export_into({image: layers_of[image]}, left, scanned)
                    scanned.failed.update(dict.fromkeys(left, alone) if alone else {})
        if why is not None:
            scanned.failed.update(dict.fromkeys(_left(missing, scanned), why))

    def _export_into(
        self, images: Mapping[str, Sequence[str]], wanted: set[str], scanned: Scanned
    ) -> str | None:
        """Read `wanted` from one export of `images` into `scanned`; why it failed, if so."""
        scanned.exports += 1
        try:
            response = self.export(list(images))
            try:
                read = read_export(
                    response.raw.read, ExportPlan(images, frozenset(wanted)), self.limits
                )
            finally:
                response.close()
        except Exception as exc:  # the images needing these layers are errors, the rest not
            log.debug("exporting %s failed", list(images), exc_info=True)
            return f"the export failed: {self.describe(exc)}"
        scanned.layers.update(read.layers)
        scanned.read.update(read.layers)
        scanned.unverified.update(read.unverified)
        scanned.failed.update(read.failed)
        for diff_id in read.missing:
            scanned.failed[diff_id] = "the layer was not in the daemon's export"
        return None

    def _open_cache(self) -> LayerCache | None:
        if self.cache_url is None:
            return None
        from auditor.redact import fingerprint_key_id
        from auditor.store.layers import open_layer_cache  # SQLAlchemy: only when needed

        try:
            return open_layer_cache(self.cache_url, rules_of(self.limits), fingerprint_key_id())
        except AuditorError as exc:
            log.warning("image layers are read without the layer cache: %s", exc)
            return None

    def _cached(self, cache: LayerCache, wanted: set[str]) -> dict[str, LayerFindings]:
        try:
            kept = cache.get(wanted)
        except AuditorError as exc:
            log.warning("image layers are read without the layer cache: %s", exc)
            return {}
        found: dict[str, LayerFindings] = {}
        for diff_id, data in kept.items():
            try:
                found[diff_id] = LayerFindings.from_json(data)
            except ValueError as exc:  # read again, and the entry rewritten
                log.debug("layer cache entry %s ignored: %s", diff_id, exc)
        return found

    def _keep(self, cache: LayerCache, fresh: dict[str, Any]) -> None:
        try:
            cache.put(fresh)
        except AuditorError as exc:
            log.warning("the layer cache could not keep this audit's layers: %s", exc)


def _left(wanted: set[str], scanned: Scanned) -> set[str]:
    """The layers of `wanted` with neither findings nor a reason for having none."""
    return wanted - scanned.layers.keys() - scanned.failed.keys()


class ImageLayers:
    """The daemon's images (list order) and the layers of each, from their inspects."""

    def __init__(
        self, listing: Sequence[Mapping[str, Any]], inspected: Mapping[str, Mapping[str, Any] | str]
    ) -> None:
        self.listing = listing
        self.layers_of: dict[str, list[str]] = {}
        self.sizes: dict[str, int] = {}
        self.errors: dict[str, str] = {}
        for entry in listing:
            iid = str(entry.get("Id"))
            size = entry.get("Size")
            self.sizes[iid] = size if isinstance(size, int) else 0
            found = inspected.get(iid)
            layers = ((found or {}).get("RootFS") or {}) if isinstance(found, Mapping) else None
            if isinstance(layers, Mapping) and isinstance(layers.get("Layers") or [], list):
                self.layers_of[iid] = [str(d) for d in layers.get("Layers") or []]
            else:
                self.errors[iid] = (
                    found if isinstance(found, str) else "the image's inspect lists no layers"
                )

    def items(self, scanned: Scanned) -> list[dict[str, Any]]:
        """The docker.image_contents items: identity (Id, RepoTags, RepoDigests, Layers, the
        same as `docker inspect` and scanner reports give) and findings, or `_error`."""
        return [self._item(entry, scanned) for entry in self.listing]

    def _item(self, entry: Mapping[str, Any], scanned: Scanned) -> dict[str, Any]:
        iid = str(entry.get("Id"))
        item: dict[str, Any] = {
            "Id": iid,
            "RepoTags": list(entry.get("RepoTags") or []),
            "RepoDigests": list(entry.get("RepoDigests") or []),
        }
        if iid in self.errors:
            return {**item, "_error": self.errors[iid]}
        diff_ids = self.layers_of[iid]
        item["Layers"] = diff_ids
        for index, diff_id in enumerate(diff_ids):
            if diff_id in scanned.failed:
                why = scanned.failed[diff_id]
                # the layers read hold no verdict on the rest: every check on it is an error
                return {
                    **item,
                    "complete": False,
                    "stopped": why,
                    "_error": f"image scan incomplete: layer {index} ({diff_id[:19]}…): {why}",
                }
        found = image_findings(diff_ids, scanned.layers)
        found["layers_read"] = len(set(diff_ids) & scanned.read)
        return {**item, **found}
