"""Reading a recorded `docker save` export as the content scan does: shared by the recorder of
the Docker fixtures and the unit tests that replay them."""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

from auditor.collectors import docker_image, image_export


def member(tar: tarfile.TarFile, name: str) -> bytes:
    """The bytes of the export's regular file `name`; an AssertionError naming it if the
    export has none."""
    found = tar.extractfile(name)
    assert found is not None, f"the export has no file {name!r}"
    return found.read()


def manifest_and_config(tar: tarfile.TarFile) -> tuple[dict[str, Any], dict[str, Any]]:
    """The manifest entry of the export's one image, and that image's config."""
    [entry] = json.loads(member(tar, "manifest.json"))
    return entry, json.loads(member(tar, entry["Config"]))


def scan_export(export: bytes, limits: dict[str, Any]) -> dict[str, Any]:
    """The findings of the one image of a recorded `docker save` export, all its layers
    wanted (the image's diff_ids are read from its config in the export)."""
    with tarfile.open(fileobj=io.BytesIO(export)) as tar:
        entry, config = manifest_and_config(tar)
    diff_ids = config["rootfs"]["diff_ids"]
    image = "sha256:" + entry["Config"].removesuffix(".json").rpartition("/")[2]
    plan = image_export.ExportPlan({image: diff_ids}, frozenset(diff_ids))
    bounds = docker_image.ScanLimits(**limits)
    read = image_export.read_export(io.BytesIO(export).read, plan, bounds)
    assert not read.failed and not read.missing
    return docker_image.image_findings(diff_ids, read.layers)
