"""Compiled profiles kept between runs, so that a run does not parse and check 200 checks anew.

Loading the shipped profile (YAML, validation, CEL and message syntax) costs ~0.4 s, a fifth
of a local audit. A load that succeeded is kept as a pickle under $XDG_CACHE_HOME/auditor
(~/.cache/auditor), named by the profile and overlay paths and by auditor's own code (its
version and the size and time of each of its modules, so an upgrade or an edited checkout
never reads an older layout). It is used only while every profile and overlay file still has
the SHA-256 it had when it was loaded, so a cached profile is exactly what loading the files
would give. Like Python's own __pycache__, the file is trusted because only its owner can
write it: a file or directory that is not the current user's alone is ignored, as is any
problem reading or writing the cache (the profile is then loaded from its files).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import stat
import sys
import tempfile
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from auditor import __version__

_FORMAT = 1
# What reading an entry that is missing, cut short, or written by other code can raise.
_UNUSABLE = (
    OSError,
    EOFError,
    pickle.UnpicklingError,
    AttributeError,  # a class or attribute the entry names no longer exists
    ImportError,
    KeyError,
    TypeError,
    ValueError,
)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "auditor" / "profiles"


def load(manifest: Path, overlays: Sequence[Path]) -> object | None:
    """The cached profile for these files, or None (no entry, files changed, not trusted); the
    caller checks that it is a profile."""
    path = _entry_path(manifest, overlays)
    try:
        with open(path, "rb") as handle:
            if not (_trusted(os.fstat(handle.fileno())) and _trusted(os.stat(path.parent))):
                return None
            entry: dict[str, Any] = pickle.load(handle)
        if entry.get("format") != _FORMAT:
            return None
        if any(_sha256(Path(p)) != digest for p, digest in entry["files"].items()):
            return None
        profile: object = entry["profile"]
        return profile
    except _UNUSABLE:  # a missing, unreadable, partial or foreign entry: load from the files
        return None


def save(manifest: Path, overlays: Sequence[Path], profile: object, files: Sequence[str]) -> None:
    """Keep `profile`, loaded from `manifest` and `overlays` (and read from `files`), for
    the next run (best effort)."""
    try:
        entry = {
            "format": _FORMAT,
            "files": {path: _sha256(Path(path)) for path in files},
            "profile": profile,
        }
        directory = cache_dir()
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _trusted(os.stat(directory)):
            return
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=".entry-")
        try:
            with os.fdopen(handle, "wb") as out:
                pickle.dump(entry, out, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(temporary, _entry_path(manifest, overlays))
        except BaseException:
            os.unlink(temporary)
            raise
    except (OSError, pickle.PicklingError):  # a read-only home, a full disk: load next time
        return


def _entry_path(manifest: Path, overlays: Sequence[Path]) -> Path:
    key = json.dumps(
        [
            str(manifest.resolve()),
            [str(Path(o).resolve()) for o in overlays],
            _code_signature(),
        ]
    )
    return cache_dir() / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".pickle")


@cache
def _code_signature() -> list[Any]:
    """auditor's version, Python's, and the size and mtime of every auditor module: the
    models, fact catalogue and CEL helpers that a cached profile was checked against."""
    package = Path(__file__).resolve().parent
    modules = sorted(
        (str(p.relative_to(package)), p.stat().st_size, p.stat().st_mtime_ns)
        for p in package.rglob("*.py")
    )
    return [__version__, list(sys.version_info[:2]), modules]


def _trusted(info: os.stat_result) -> bool:
    """Owned by this user and writable by nobody else."""
    return info.st_uid == os.geteuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
