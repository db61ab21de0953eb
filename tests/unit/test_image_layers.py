"""docker.image_contents items from layer findings (auditor/collectors/image_layers.py): an
image is an error when one of its layers has no findings, its neighbours are not; which
layer cache a run uses."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from auditor.collectors import image_layers
from auditor.collectors.docker_image import LayerFindings
from auditor.store import default_url

BASE, TOP, OTHER = ("sha256:" + c * 64 for c in "abc")


def test_an_image_errs_when_one_of_its_layers_hit_a_bound_and_only_then() -> None:
    listing = [
        {"Id": "sha256:1", "RepoTags": ["a:1"], "RepoDigests": ["a@sha256:9"]},
        {"Id": "sha256:2", "RepoTags": None},
        {"Id": "sha256:3"},
    ]
    inspected = {
        "sha256:1": {"RootFS": {"Layers": [BASE, TOP]}},
        "sha256:2": {"RootFS": {"Layers": [BASE, OTHER]}},
        "sha256:3": "removed between the list and the inspect call",
    }
    scanned = image_layers.Scanned(
        layers={BASE: LayerFindings(setid={"/bin/su": "4755"}, paths={"/bin/su"}, bytes=10),
                OTHER: LayerFindings(whiteouts=["/bin/su"], bytes=5)},
        failed={TOP: "the 1 MiB bound was reached after 1048576 bytes of the layer"},
        read={OTHER},
    )  # fmt: skip
    first, second, third = image_layers.ImageLayers(listing, inspected).items(scanned)
    assert first["_error"] == (
        f"image scan incomplete: layer 1 ({TOP[:19]}…): the 1 MiB bound was reached after "
        "1048576 bytes of the layer"
    )
    assert first["RepoDigests"] == ["a@sha256:9"] and first["Layers"] == [BASE, TOP]
    assert "_error" not in second
    assert second["setid_files"] == []  # deleted by the layer above
    assert (second["bytes"], second["layers_read"], second["RepoTags"]) == (15, 1, [])
    assert third == {
        "Id": "sha256:3",
        "RepoTags": [],
        "RepoDigests": [],
        "_error": "removed between the list and the inspect call",
    }


def test_a_run_uses_its_store_or_else_the_users_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AUDITOR_DB", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert image_layers.cache_url(stored=True, db=None) == default_url()
    assert image_layers.cache_url(stored=True, db="postgresql://h/db") == "postgresql://h/db"
    monkeypatch.setenv("AUDITOR_DB", "sqlite:////srv/a.db")
    assert image_layers.cache_url(stored=True, db=None) == "sqlite:////srv/a.db"
    assert image_layers.cache_url(stored=False, db=None) == (
        f"sqlite:///{tmp_path / 'auditor' / 'layers.db'}"
    )


def test_the_rule_set_names_the_file_bound() -> None:
    small = image_layers.limits_from({"docker_image_scan_max_file_kib": 1})
    assert image_layers.rules_of(small) != image_layers.rules_of(image_layers.limits_from({}))


class _Export:
    """What the Engine API's export gives the collector: a stream and its close."""

    def __init__(self, data: bytes) -> None:
        self.raw = io.BytesIO(data)

    def close(self) -> None:
        self.raw.close()


def test_layers_are_cached_only_when_their_bytes_are_their_digest(tmp_path: Path) -> None:
    plain = io.BytesIO()
    with tarfile.open(fileobj=plain, mode="w") as tar:
        info = tarfile.TarInfo("bin/tool")
        info.size, info.mode = 1, 0o4755
        tar.addfile(info, io.BytesIO(b"t"))
    layer = plain.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    exports: list[list[str]] = []

    def export_of(blob: bytes) -> Any:
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            for name, data in (
                (f"blobs/sha256/{hashlib.sha256(blob).hexdigest()}", blob),
                ("manifest.json", json.dumps([{"Config": "blobs/sha256/" + "1" * 64,
                  "Layers": [f"blobs/sha256/{hashlib.sha256(blob).hexdigest()}"]}]).encode()),
            ):  # fmt: skip
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return lambda ids: exports.append(ids) or _Export(archive.getvalue())

    image = {"sha256:" + "1" * 64: [diff_id]}
    url = f"sqlite:///{tmp_path / 'layers.db'}"
    limits = image_layers.limits_from({})
    for blob in (gzip.compress(layer), gzip.compress(layer), layer, layer):
        scanned = image_layers.LayerSource(url, limits, export_of(blob)).findings(image)
        assert scanned.layers[diff_id].setid == {"/bin/tool": "4755"}
    # compressed: read both times, never kept; plain: read once, then from the cache
    assert len(exports) == 3
