"""The project's own container image, built offline from the repository's Dockerfile on the
test dockerd: a debootstrapped Debian with Debian's python3 as the base (no registry is
reachable here), auditor installed from wheels built on this machine, then `auditor
--version` and a local audit run inside it as the unprivileged user."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import docker
import pytest
from servers import debian

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]  # builds an image

ROOT = Path(__file__).resolve().parents[2]
PYTHON_BASE = (*debian.BASE_PACKAGES, "python3", "python3-venv", "libpango-1.0-0",
               "libpangoft2-1.0-0", "fonts-dejavu-core", "ca-certificates")  # fmt: skip


@pytest.fixture(scope="module")
def image(own_dockerd, tmp_path_factory) -> str:
    client = docker.DockerClient(base_url=own_dockerd.base_url, timeout=900)
    try:
        base = debian.debian_image(client, PYTHON_BASE)
        context = tmp_path_factory.mktemp("image-context")
        shutil.copy(ROOT / "Dockerfile", context / "Dockerfile")
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check",
             "-w", str(context / "wheels"), f"{ROOT}[fleet,postgres]"],
            check=True, capture_output=True, timeout=900,
        )  # fmt: skip
        # Debian 12's python3 is 3.11.2: redis needs async-timeout below 3.11.3, which the
        # Python building the wheels (a newer 3.11) does not ask for.
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
             "--only-binary=:all:", "-d", str(context / "wheels"), "async-timeout>=4.0.3"],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
        tag = "auditor-test/auditor:ci"
        log: list[str] = []
        for chunk in client.api.build(
            path=str(context),
            tag=tag,
            buildargs={"BASE": base, "WHEELS": "wheels"},
            rm=True,
            forcerm=True,
            network_mode="none",  # offline: everything it installs is in the context
            decode=True,
        ):
            log.append(chunk.get("stream") or chunk.get("error") or "")
            assert "error" not in chunk, "".join(log)[-4000:]
        return tag
    finally:
        client.close()


def _run(own_dockerd, image: str, *args: str) -> tuple[int, str, str]:
    client = docker.DockerClient(base_url=own_dockerd.base_url, timeout=300)
    try:
        container = client.containers.run(image, list(args), detach=True, network_mode="none")
        try:
            status = container.wait(timeout=300)["StatusCode"]
            out = container.logs(stdout=True, stderr=False).decode()
            err = container.logs(stdout=False, stderr=True).decode()
            return status, out, err
        finally:
            container.remove(force=True)
    finally:
        client.close()


def test_the_image_runs_auditor_as_an_unprivileged_user(own_dockerd, image):
    from auditor import __version__

    status, out, err = _run(own_dockerd, image, "--version")
    assert status == 0, err
    assert __version__ in out
    client = docker.DockerClient(base_url=own_dockerd.base_url, timeout=60)
    try:
        config = client.images.get(image).attrs["Config"]
    finally:
        client.close()
    assert config["User"] == "65532:65532" and config["Entrypoint"] == ["auditor"]


def test_a_local_audit_runs_inside_the_image(own_dockerd, image):
    status, out, err = _run(
        own_dockerd, image, "run", "-t", "local://", "--no-store", "-q", "-r", "json:-"
    )
    assert status in (0, 1), err  # 1: a gate; the audit itself ran
    doc = json.loads(out)
    (target,) = doc["targets"]
    assert target["error"] is None and target["kind"] == "host"
    assert any(f["name"] == "host.os" and f["error"] is None for f in target["facts"])
