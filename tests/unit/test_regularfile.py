"""Input files must be regular files, read within a cap: FIFOs and devices are refused at once."""

from __future__ import annotations

import hashlib
import os

import pytest

from auditor.regularfile import (
    UnreadableFile,
    check_regular_file,
    read_regular_file,
    regular_file_sha256,
)


def test_a_regular_file_is_read_and_hashed(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 3_000_000)
    assert read_regular_file(path, 3_000_000) == b"x" * 3_000_000
    assert regular_file_sha256(path, 3_000_000) == hashlib.sha256(b"x" * 3_000_000).hexdigest()
    check_regular_file(path)


@pytest.mark.timeout(10)
def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for read in (lambda: read_regular_file(fifo, 10), lambda: regular_file_sha256(fifo, 10)):
        with pytest.raises(UnreadableFile, match=r"not a regular file \(a FIFO\)"):
            read()
    with pytest.raises(UnreadableFile, match="a FIFO"):
        check_regular_file(fifo)


@pytest.mark.timeout(10)
def test_devices_and_directories_are_refused(tmp_path):
    with pytest.raises(UnreadableFile, match="a character device"):
        read_regular_file("/dev/zero", 2**40)  # type: ignore[arg-type]
    with pytest.raises(UnreadableFile, match="a directory"):
        read_regular_file(tmp_path, 10)


def test_a_file_over_the_cap_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "big"
    path.write_bytes(b"x" * 101)
    with pytest.raises(UnreadableFile, match="file of 101 bytes is over the 100-byte limit"):
        read_regular_file(path, 100)


def test_a_missing_file_says_so(tmp_path):
    with pytest.raises(UnreadableFile, match="cannot read: no such file"):
        read_regular_file(tmp_path / "missing", 10)
