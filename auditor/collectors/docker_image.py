"""Image content scanning: secrets, set-id and world-writable files in an image's layers.

The image comes as the Engine API exports it (`GET /images/{name}/get`, the `docker save`
tar: legacy `<id>/layer.tar` entries or OCI `blobs/sha256/<digest>`), read through tarfile in
stream mode, the layer tars inside it streamed too: nothing is kept but the findings and the
paths of each layer (to tell which findings later layers replaced or deleted). Reading stops
at a byte and a time bound. A secret is reported by path, kind and keyed fingerprint, never
by value.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
import tarfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from auditor.redact import fingerprint

# The version of what a scan finds (patterns, placeholders, what is flagged): a layer cache
# entry made under another version is never used. Raise it with any change to the matching.
SCAN_RULES_VERSION = "1"


@dataclass(frozen=True)
class ScanLimits:
    """How much of one layer is read: bytes of its tar, seconds, and bytes per file whose
    content is searched for secrets (larger files are only checked for their mode)."""

    max_bytes: int = 512 * 1024 * 1024
    max_seconds: float = 60.0
    max_file_bytes: int = 1024 * 1024


class ScanStopped(Exception):
    """A bound was reached before the end of the image."""


class BoundedReader:
    """A read-only file over `read(n)` that stops at a byte count and a deadline."""

    def __init__(
        self,
        read: Callable[[int], bytes],
        limits: ScanLimits,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._limits = limits
        self._clock = clock
        self._deadline = clock() + limits.max_seconds
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        if self._clock() > self._deadline:
            raise ScanStopped(f"the {self._limits.max_seconds:g} s time bound was reached")
        if self.bytes_read >= self._limits.max_bytes:
            raise ScanStopped(
                f"the {self._limits.max_bytes / (1024 * 1024):g} MiB bound was reached"
            )
        want = self._limits.max_bytes - self.bytes_read
        if size is not None and size >= 0:
            want = min(want, size)
        data = self._read(want)
        self.bytes_read += len(data)
        return data


# Secrets by content. Group "v" is the secret itself (what the fingerprint is taken of).
_PRIVATE_KEY = re.compile(
    rb"(?P<v>-----BEGIN (?P<t>[A-Z0-9 ]{0,40}PRIVATE KEY)-----[A-Za-z0-9+/=\s:,.\-]{64,20000}?"
    rb"-----END (?P=t)-----)"
)
_CONTENT_PATTERNS: tuple[tuple[str, re.Pattern[bytes]], ...] = (
    ("aws-access-key-id", re.compile(rb"\b(?P<v>(?:AKIA|ASIA)[0-9A-Z]{16})\b")),
    (
        "aws-secret-access-key",
        re.compile(rb"(?i)aws_secret_access_key\s*[=:]\s*[\"']?(?P<v>[A-Za-z0-9/+=]{40})\b"),
    ),
    ("github-token", re.compile(rb"\b(?P<v>gh[pousr]_[A-Za-z0-9]{36,255})\b")),
    ("slack-token", re.compile(rb"\b(?P<v>xox[abposr]-[A-Za-z0-9-]{10,})")),
    ("gitlab-token", re.compile(rb"\b(?P<v>glpat-[A-Za-z0-9_\-]{20,})")),
)
# Secrets that only mean something in files of a known name.
_NAMED_PATTERNS: tuple[tuple[str, str, re.Pattern[bytes]], ...] = (
    (
        "registry-credential",
        "*/.docker/config.json",
        re.compile(rb"\"(?:auth|identitytoken)\"\s*:\s*\"(?P<v>[^\"]{8,})\""),
    ),
    ("registry-credential", "*/.dockercfg", re.compile(rb"\"auth\"\s*:\s*\"(?P<v>[^\"]{8,})\"")),
    ("npm-token", "*/.npmrc", re.compile(rb"_auth(?:Token)?\s*=\s*(?P<v>[^\s\"']{8,})")),
    ("pypi-password", "*/.pypirc", re.compile(rb"(?m)^\s*password\s*[=:]\s*(?P<v>\S+)")),
    ("git-credential", "*/.git-credentials", re.compile(rb"https?://[^:/\s]+:(?P<v>[^@\s]+)@")),
    ("netrc-password", "*/.netrc", re.compile(rb"\bpassword\s+(?P<v>\S+)")),
)
# Placeholder values that documentation and SDK tests ship.
_PLACEHOLDER = re.compile(rb"EXAMPLE|example|XXXXXXXX|xxxxxxxx|<[a-z_]+>")


def find_secrets(path: str, content: bytes) -> list[tuple[str, str]]:
    """(kind, fingerprint) of each distinct secret in one file's content."""
    found: dict[tuple[str, str], None] = {}
    for match in _PRIVATE_KEY.finditer(content):
        found[("private-key", fingerprint(match.group("v").decode("latin-1")))] = None
    for kind, pattern in _CONTENT_PATTERNS:
        for match in pattern.finditer(content):
            value = match.group("v")
            if not _PLACEHOLDER.search(value):
                found[(kind, fingerprint(value.decode("latin-1")))] = None
    for kind, glob, pattern in _NAMED_PATTERNS:
        if fnmatch.fnmatchcase("/" + path.lstrip("/"), glob):
            for match in pattern.finditer(content):
                value = match.group("v")
                if not _PLACEHOLDER.search(value):
                    found[(kind, fingerprint(value.decode("latin-1")))] = None
    return list(found)


@dataclass
class LayerFindings:
    """What one layer holds: every path (to resolve overrides) and its flagged entries."""

    paths: set[str] = field(default_factory=set)
    whiteouts: list[str] = field(default_factory=list)  # deleted paths
    opaque: list[str] = field(default_factory=list)  # directories whose lower content is hidden
    setid: dict[str, str] = field(default_factory=dict)  # path -> mode
    writable: dict[str, str] = field(default_factory=dict)
    secrets: list[tuple[str, str, str]] = field(default_factory=list)  # path, kind, fingerprint
    files: int = 0
    unscanned: int = 0  # regular files too large to search
    bytes: int = 0  # of the layer's tar as read

    def to_json(self) -> dict[str, Any]:
        """A JSON object of the findings, as the layer cache keeps them."""
        return {
            "paths": sorted(self.paths),
            "whiteouts": self.whiteouts,
            "opaque": self.opaque,
            "setid": self.setid,
            "writable": self.writable,
            "secrets": [list(s) for s in self.secrets],
            "files": self.files,
            "unscanned": self.unscanned,
            "bytes": self.bytes,
        }

    @classmethod
    def from_json(cls, data: Any) -> LayerFindings:
        """The findings `to_json` gave; ValueError when `data` is not of that shape."""
        try:
            found = cls(
                paths={_text(p) for p in data["paths"]},
                whiteouts=[_text(p) for p in data["whiteouts"]],
                opaque=[_text(p) for p in data["opaque"]],
                setid={_text(p): _text(m) for p, m in data["setid"].items()},
                writable={_text(p): _text(m) for p, m in data["writable"].items()},
                secrets=[(_text(p), _text(k), _text(f)) for p, k, f in data["secrets"]],
                files=int(data["files"]),
                unscanned=int(data["unscanned"]),
                bytes=int(data["bytes"]),
            )
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"not a layer's findings: {type(exc).__name__}: {exc}") from exc
        return found


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value


def _normal(name: str) -> str:
    """A member name as an absolute path: "./usr/bin/" -> "/usr/bin"."""
    return posixpath.normpath("/" + name.lstrip("/"))


def _mode(member: tarfile.TarInfo) -> str:
    return f"{member.mode & 0o7777:04o}"


def scan_layer_tar(stream: BoundedReader | IO[bytes], limits: ScanLimits) -> LayerFindings:
    """Stream one layer tar (plain or compressed) and collect its findings. Raises ScanStopped
    at a bound, tarfile.ReadError when the stream is not a tar."""
    layer = LayerFindings()
    with tarfile.open(fileobj=stream, mode="r|*") as layer_tar:  # type: ignore[call-overload]
        _scan_layer(layer_tar, layer, limits)
    if isinstance(stream, BoundedReader):
        layer.bytes = stream.bytes_read
    return layer


def _scan_layer(layer_tar: tarfile.TarFile, layer: LayerFindings, limits: ScanLimits) -> None:
    for member in layer_tar:
        path = _normal(member.name)
        directory, base = posixpath.split(path)
        if base == ".wh..wh..opq":
            layer.opaque.append(directory)
            continue
        if base.startswith(".wh."):
            layer.whiteouts.append(posixpath.join(directory, base[4:]))
            continue
        layer.paths.add(path)
        if member.isreg():
            layer.files += 1
            if member.mode & 0o6000:
                layer.setid[path] = _mode(member)
            if member.mode & 0o002:
                layer.writable[path] = _mode(member)
            if member.size > limits.max_file_bytes:
                layer.unscanned += 1
                continue
            handle = layer_tar.extractfile(member)
            if handle is not None:
                content = handle.read(limits.max_file_bytes)
                for kind, print_ in find_secrets(path, content):
                    layer.secrets.append((path, kind, print_))
        elif member.isdir() and member.mode & 0o002 and not member.mode & 0o1000:
            layer.writable[path] = _mode(member)


def _hidden(path: str, by: LayerFindings) -> bool:
    """Whether layer `by` replaces or deletes `path` of a layer below it."""
    if path in by.paths:
        return True
    for gone in by.whiteouts:
        if path == gone or path.startswith(gone.rstrip("/") + "/"):
            return True
    return any(path.startswith(d.rstrip("/") + "/") for d in by.opaque)


def image_findings(diff_ids: Sequence[str], layers: Mapping[str, LayerFindings]) -> dict[str, Any]:
    """The fact item of one image (without its identity) from its layers' findings, `diff_ids`
    bottom first as `docker inspect` lists them in RootFS.Layers. Example::

        {"complete": True, "bytes": 2160640, "layers": 2, "files": 14, "unscanned_files": 0,
         "secrets": [{"path": "/root/.ssh/id_ed25519", "kind": "private-key",
                      "fingerprint": "3f1c09ab52e7", "layer": 1,
                      "layer_digest": "sha256:9a0b…", "in_final_image": False}],
         "setid_files": [{"path": "/bin/su", "mode": "4755", "layer": 0}],
         "world_writable": [{"path": "/opt/app/cache", "mode": "0777", "layer": 1}]}

    Secrets are listed from every layer, deleted later or not (a deleted file can still be
    extracted from its layer: the image's history holds it); `in_final_image` says whether a
    container of the image sees it. Set-id and world-writable entries are listed only when
    still in the final file system. Layers are numbered bottom first.
    """
    stack = [layers[d] for d in diff_ids]
    secrets: list[dict[str, Any]] = []
    setid: list[dict[str, Any]] = []
    writable: list[dict[str, Any]] = []
    for index, layer in enumerate(stack):
        above = stack[index + 1 :]

        def final(path: str) -> bool:
            return not any(_hidden(path, upper) for upper in above)  # noqa: B023

        for path, kind, print_ in layer.secrets:
            secrets.append(
                {
                    "path": path,
                    "kind": kind,
                    "fingerprint": print_,
                    "layer": index,
                    "layer_digest": diff_ids[index],
                    "in_final_image": final(path),
                }
            )
        setid += [
            {"path": p, "mode": m, "layer": index}
            for p, m in sorted(layer.setid.items())
            if final(p)
        ]
        writable += [
            {"path": p, "mode": m, "layer": index}
            for p, m in sorted(layer.writable.items())
            if final(p)
        ]
    return {
        "complete": True,
        "stopped": None,
        "bytes": sum(layer.bytes for layer in stack),
        "layers": len(stack),
        "files": sum(layer.files for layer in stack),
        "unscanned_files": sum(layer.unscanned for layer in stack),
        "secrets": secrets,
        "setid_files": setid,
        "world_writable": writable,
    }
