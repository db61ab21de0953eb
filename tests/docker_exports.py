"""Reading a recorded `docker save` export as the content scan does: shared by the recorder of
the Docker fixtures and the unit test that replays them."""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

from auditor.collectors import docker_image, image_export


def scan_export(export: bytes, limits: dict[str, Any]) -> dict[str, Any]:
    """The findings of the one image of a recorded `docker save` export, all its layers
    wanted (the image's diff_ids are read from its config in the export)."""
    with tarfile.open(fileobj=io.BytesIO(export)) as tar:
        [entry] = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        config = json.load(tar.extractfile(entry["Config"]))  # type: ignore[arg-type]
    diff_ids = config["rootfs"]["diff_ids"]
    image = "sha256:" + entry["Config"].removesuffix(".json").rpartition("/")[2]
    plan = image_export.ExportPlan({image: diff_ids}, frozenset(diff_ids))
    bounds = docker_image.ScanLimits(**limits)
    read = image_export.read_export(io.BytesIO(export).read, plan, bounds)
    assert not read.failed and not read.missing
    return docker_image.image_findings(diff_ids, read.layers)
