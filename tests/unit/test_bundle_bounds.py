"""Crafted tar files cost a bundle reader neither minutes of CPU nor gigabytes of memory.

Each case is a real gzip tar file written byte by byte as an attacker would, read by
`auditor verify` in a process of its own (time and exit status as a user sees them).
"""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from auditor import bundle
from auditor.bundle import BundleError, read_bundle


def crafted(path: Path, header_type: bytes, payload: bytes) -> None:
    """A gzip tar whose first member is an extended header of `header_type` carrying
    `payload`, followed by a small manifest.json."""
    out = io.BytesIO()
    info = tarfile.TarInfo(
        "././@PaxHeader" if header_type != tarfile.GNUTYPE_LONGNAME else "././@LongLink"
    )
    info.type, info.size = header_type, len(payload)
    out.write(info.tobuf(format=tarfile.USTAR_FORMAT))
    out.write(payload + b"\0" * (-len(payload) % tarfile.BLOCKSIZE))
    manifest = tarfile.TarInfo("manifest.json")
    manifest.size = 2
    out.write(manifest.tobuf(format=tarfile.USTAR_FORMAT) + b"{}".ljust(tarfile.BLOCKSIZE, b"\0"))
    out.write(b"\0" * 2 * tarfile.BLOCKSIZE)
    path.write_bytes(gzip.compress(out.getvalue(), mtime=0))


def verify(path: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "auditor", "verify", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    return done, time.monotonic() - started


@pytest.mark.parametrize(
    ("header_type", "size"),
    [
        (tarfile.XHDTYPE, 1 << 20),  # CVE-2024-6232: ~30 minutes of CPU on Python 3.11.7
        (tarfile.XGLTYPE, 1 << 20),
        (tarfile.GNUTYPE_LONGNAME, 64 << 20),  # read whole into memory before any check
    ],
)
def test_an_oversized_extended_header_is_refused_at_once(tmp_path, header_type, size):
    path = tmp_path / "hostile.tar.gz"
    crafted(path, header_type, b"1" * size)
    done, took = verify(path)
    assert done.returncode == 2, done.stderr
    assert "extended tar header" in done.stderr and str(path) in done.stderr
    assert "Traceback" not in done.stderr
    assert took < 10  # the interpreter's start included; the refusal itself is immediate


def test_a_small_extended_header_is_still_read(tmp_path):
    path = tmp_path / "pax.tar.gz"
    crafted(path, tarfile.XHDTYPE, b"20 comment=harmless\n")
    with pytest.raises(BundleError, match="not an auditor bundle"):  # got past the header
        read_bundle(path)


def test_an_oversized_member_is_refused_before_it_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(bundle, "MAX_MEMBER_BYTES", 1 << 20)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        info = tarfile.TarInfo("evidence/" + "0" * 64 + ".json")
        info.size = 2 << 20
        tar.addfile(info, io.BytesIO(b"x" * info.size))
    path = tmp_path / "big.tar.gz"
    path.write_bytes(out.getvalue())
    with pytest.raises(BundleError, match=r"of 2097152 bytes .* up to 1 MiB per member"):
        read_bundle(path)


def test_too_many_members_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(bundle, "MAX_MEMBERS", 10)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for index in range(20):
            info = tarfile.TarInfo(f"targets/{index:04d}.json")
            info.size = 2
            tar.addfile(info, io.BytesIO(b"{}"))
    path = tmp_path / "many.tar.gz"
    path.write_bytes(out.getvalue())
    with pytest.raises(BundleError, match="larger than auditor reads"):
        read_bundle(path)
