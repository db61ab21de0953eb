"""Reading an input file that must be a regular file, within a size cap.

A FIFO blocks `open()` until a writer comes, and `/dev/zero` or a character device never ends:
a user's file given in their place must be refused, not waited on or read until memory runs
out. The file is opened with O_NONBLOCK (so a FIFO opens at once), checked with fstat on the
descriptor that is read (no race with a swapped path), and read up to `max_bytes`.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path


def is_file(path: Path) -> bool:
    """Path.is_file() that answers False for names the system refuses (too long, a NUL ...)
    instead of raising: a user's path is checked before it is read."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def is_dir(path: Path) -> bool:
    """Path.is_dir(), False for names the system refuses."""
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def exists(path: Path) -> bool:
    """Path.exists(), False for names the system refuses."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


class UnreadableFile(Exception):
    """The file cannot be used as input; `reason` is one line for the operator."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def read_regular_file(path: Path, max_bytes: int) -> bytes:
    """The bytes of `path`; UnreadableFile when it is missing, not a regular file or larger
    than `max_bytes`."""
    return b"".join(_chunks(path, max_bytes))


def regular_file_sha256(path: Path, max_bytes: int) -> str:
    """The SHA-256 of `path`, read in chunks (evidence files can be large); UnreadableFile as
    for read_regular_file."""
    digest = hashlib.sha256()
    for chunk in _chunks(path, max_bytes):
        digest.update(chunk)
    return digest.hexdigest()


def check_regular_file(path: Path) -> None:
    """UnreadableFile unless `path` can be opened and is a regular file (for readers, such as
    tarfile, that open the file themselves)."""
    os.close(_open_regular(path, None))


def _open_regular(path: Path, max_bytes: int | None) -> int:
    """A blocking descriptor on `path`, checked to be a regular file of at most `max_bytes`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError as exc:
        raise UnreadableFile("cannot read: no such file") from exc
    except (OSError, ValueError) as exc:
        raise UnreadableFile(f"cannot read: {getattr(exc, 'strerror', None) or exc}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableFile(f"not a regular file ({_kind(info.st_mode)})")
        if max_bytes is not None and info.st_size > max_bytes:
            raise UnreadableFile(_too_large(info.st_size, max_bytes))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _chunks(path: Path, max_bytes: int) -> Iterator[bytes]:
    fd = _open_regular(path, max_bytes)
    try:
        total = 0
        while chunk := os.read(fd, 1 << 20):
            total += len(chunk)
            if total > max_bytes:  # it grew while we read it
                raise UnreadableFile(_too_large(total, max_bytes))
            yield chunk
    except OSError as exc:
        raise UnreadableFile(f"cannot read: {exc.strerror}") from exc
    finally:
        os.close(fd)


def _too_large(size: int, max_bytes: int) -> str:
    return f"file of {size} bytes is over the {max_bytes}-byte limit"


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "a special file"
