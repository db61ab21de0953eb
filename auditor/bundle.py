"""Evidence bundles: facts collected now, judged later, elsewhere, by someone else.

A bundle is a gzip tar of regular files only:

    manifest.json          schema, tool and profile versions, time, targets, and the sha256
                           of every other member
    manifest.sig           optional: an Ed25519 signature over the bytes of manifest.json
    targets/0000.json      one target: name, URL, kind, times, error, variables, fact metadata
    evidence/<sha256>.json one fact's data (canonical JSON), named by its hash

Reading refuses, with one line naming the problem, anything that is not exactly that: a
truncated or corrupt archive, links, absolute or `..` paths, unexpected or missing members, a
hash or a signature that does not match, a bundle that is not signed by the key given.
Nothing is ever extracted to disk.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import re
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pydantic
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field

from auditor import __version__
from auditor.config import TargetSpec
from auditor.document import fact_record
from auditor.errors import InputError
from auditor.facts import canonical_json, utc_now
from auditor.model import Fact, TargetKind, TargetRecord
from auditor.profiles import LoadedProfile
from auditor.redact import redact
from auditor.regularfile import UnreadableFile, check_regular_file, read_regular_file

SCHEMA = "auditor-bundle/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
MAX_MEMBERS = 200_000
MAX_BYTES = 2 * 1024**3  # uncompressed; a bundle bigger than this is refused, not read
_TARGET = re.compile(r"^targets/[0-9]{4,6}\.json$")
_EVIDENCE = re.compile(r"^evidence/([0-9a-f]{64})\.json$")
PASSWORD_ENV = "AUDITOR_SIGN_KEY_PASSWORD"
MAX_KEY_BYTES = 1 << 20  # a key file is a few hundred bytes


class BundleError(InputError):
    """A bundle, or a key for one, that auditor refuses."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _json(value: Any) -> bytes:
    return (json.dumps(value, indent=1, ensure_ascii=False, sort_keys=True) + "\n").encode()


# --- keys ----------------------------------------------------------------------------------


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PEM (PKCS#8) or OpenSSH file."""
    data = _read_key(path)
    password = os.environ.get(PASSWORD_ENV)
    secret = password.encode() if password else None
    try:
        if b"OPENSSH PRIVATE KEY" in data:
            key: Any = serialization.load_ssh_private_key(data, secret)
        else:
            key = serialization.load_pem_private_key(data, secret)
    except TypeError as exc:  # encrypted key without a password, or the other way round
        raise BundleError(
            f"cannot use the key: {exc} (its password goes in {PASSWORD_ENV})", path=path
        ) from exc
    except ValueError as exc:
        raise BundleError(f"not a private key auditor can read: {exc}", path=path) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise BundleError("not an Ed25519 key", path=path)
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file or an OpenSSH `ssh-ed25519 ...` line."""
    data = _read_key(path)
    try:
        if data.lstrip().startswith(b"ssh-"):
            key: Any = serialization.load_ssh_public_key(data.strip())
        else:
            key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:  # UnsupportedAlgorithm is a ValueError too
        raise BundleError(f"not a public key auditor can read: {exc}", path=path) from exc
    if not isinstance(key, Ed25519PublicKey):
        raise BundleError("not an Ed25519 public key", path=path)
    return key


def _read_key(path: Path) -> bytes:
    try:
        return read_regular_file(path, MAX_KEY_BYTES)
    except UnreadableFile as exc:
        raise BundleError(f"the key: {exc.reason}", path=path) from exc


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """A short fingerprint of a public key (sha256 of its raw bytes, 16 hex digits)."""
    return _sha256(_raw(key))[:16]


# --- writing -------------------------------------------------------------------------------


def write_bundle(
    path: Path,
    profile: LoadedProfile,
    collected: list[tuple[TargetSpec, TargetRecord]],
    *,
    sign_key: Ed25519PrivateKey | None = None,
    started_at: str | None = None,
) -> dict[str, Any]:
    """Write the bundle atomically (a temporary file renamed into place); returns the
    manifest."""
    members: dict[str, bytes] = {}
    targets = []
    for index, (spec, record) in enumerate(collected):
        name = f"targets/{index:04d}.json"
        members[name] = _json(
            {
                "name": record.name,
                "url": record.url,
                "kind": str(record.kind),
                "started_at": record.started_at,
                "finished_at": record.finished_at,
                "error": record.error,
                "variables": redact(spec.variables),
                "facts": [fact_record(fact) for fact in record.facts],
            }
        )
        for fact in record.facts:
            if fact.error is None:
                members[f"evidence/{fact.sha256}.json"] = canonical_json(fact.data).encode()
        targets.append(
            {"name": record.name, "url": record.url, "kind": str(record.kind), "file": name}
        )
    manifest = {
        "schema": SCHEMA,
        "tool": "auditor",
        "tool_version": __version__,
        "started_at": started_at or utc_now(),
        "created_at": utc_now(),
        "profile": {"id": profile.id, "title": profile.title, "version": profile.version},
        "targets": targets,
        "files": {name: _sha256(data) for name, data in sorted(members.items())},
    }
    members[MANIFEST] = _json(manifest)
    if sign_key is not None:
        public = sign_key.public_key()
        members[SIGNATURE] = _json(
            {
                "algorithm": "ed25519",
                "public_key": base64.b64encode(_raw(public)).decode(),
                "key_id": key_id(public),
                "signature": base64.b64encode(sign_key.sign(members[MANIFEST])).decode(),
            }
        )
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with (
            staging.open("wb") as raw,
            gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz,
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            order = [MANIFEST, *([SIGNATURE] if SIGNATURE in members else [])]
            order += sorted(n for n in members if n not in (MANIFEST, SIGNATURE))
            for name in order:
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(members[name]), 0o644
                tar.addfile(info, io.BytesIO(members[name]))
        staging.replace(path)
    except OSError as exc:
        staging.unlink(missing_ok=True)
        raise BundleError(f"cannot write the bundle: {exc.strerror}", path=path) from exc
    return manifest


# --- reading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bundle:
    """A bundle whose every member was checked against its manifest (and signature)."""

    path: Path
    manifest: dict[str, Any]
    manifest_sha256: str
    members: dict[str, bytes]
    key_id: str | None  # of the key that signed it; None when unsigned
    trusted: bool  # signed by the key the caller gave (--verify-key)

    def records(self) -> list[tuple[TargetRecord, dict[str, Any]]]:
        """Every target with its facts, and the variables it was collected with."""
        out = []
        for entry in self.manifest["targets"]:
            try:
                target = _TargetFile.model_validate(self._json(entry["file"]))
                facts = tuple(
                    Fact(
                        target=target.name,
                        data=self._evidence(meta.sha256) if meta.error is None else None,
                        **meta.model_dump(),
                    )
                    for meta in target.facts
                )
                record = TargetRecord(
                    name=target.name,
                    url=target.url,
                    kind=target.kind,
                    started_at=target.started_at,
                    finished_at=target.finished_at,
                    error=target.error,
                    facts=facts,
                )
            except pydantic.ValidationError as exc:
                error = exc.errors()[0]
                where = ".".join(str(part) for part in error["loc"])
                raise BundleError(
                    f"malformed target file {entry['file']}: {where}: {error['msg']}",
                    path=self.path,
                ) from None
            except (ValueError, RecursionError) as exc:  # not JSON, or a lone surrogate
                raise BundleError(
                    f"malformed target file {entry['file']}: {_why(exc)[:200]}", path=self.path
                ) from exc
            variables = target.variables
            out.append((record, variables))
        return out

    def _json(self, name: str) -> Any:
        if name not in self.members:
            raise BundleError(f"the manifest names {name}, which is missing", path=self.path)
        return orjson.loads(self.members[name])  # refuses lone surrogates, as UTF-8 does

    def _evidence(self, sha256: str) -> Any:
        return self._json(f"evidence/{sha256}.json")

    def summary(self) -> dict[str, Any]:
        """What a results document records about the bundle it was scored from."""
        return {
            "file": str(self.path),
            "manifest_sha256": self.manifest_sha256,
            "created_at": self.manifest["created_at"],
            "tool_version": self.manifest["tool_version"],
            "profile": self.manifest["profile"],
            "signed": self.key_id is not None,
            "key_id": self.key_id,
            "trusted_key": self.trusted,
        }


class _Named(BaseModel):
    """The parts of the manifest that reading a bundle relies on (more keys may follow)."""

    model_config = ConfigDict(extra="allow")


class _ProfileRef(_Named):
    id: str
    version: str


class _TargetEntry(_Named):
    name: str
    file: str = Field(pattern=_TARGET.pattern)


class _Manifest(_Named):
    tool_version: str
    created_at: str
    profile: _ProfileRef
    targets: list[_TargetEntry]
    files: dict[str, str]


class _FactMeta(BaseModel):
    """One fact of a target file, as `fact_record` wrote it."""

    model_config = ConfigDict(extra="forbid")

    name: str
    source: str
    status: int | None
    stderr: str
    collected_at: str
    sha256: str
    error: str | None


class _TargetFile(BaseModel):
    """targets/NNNN.json: checked before a record is built from it."""

    model_config = ConfigDict(extra="forbid")

    name: str
    url: str
    kind: TargetKind
    started_at: str
    finished_at: str
    error: str | None
    variables: dict[str, Any] = Field(default_factory=dict)
    facts: list[_FactMeta]


def read_bundle(path: Path, verify_key: Ed25519PublicKey | None = None) -> Bundle:
    """Read and verify a bundle; BundleError (exit 2, one line) for anything amiss."""
    try:
        check_regular_file(path)
    except UnreadableFile as exc:
        raise BundleError(exc.reason, path=path) from exc
    members = _members(path)
    if MANIFEST not in members:
        raise BundleError("no manifest.json: not an auditor bundle", path=path)
    try:
        manifest = orjson.loads(members[MANIFEST])
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"manifest.json is not JSON: {exc}", path=path) from exc
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
        raise BundleError(f"not an auditor bundle (schema {SCHEMA})", path=path)
    signer = _check_signature(path, members, verify_key)
    try:
        files = _Manifest.model_validate(manifest).files
    except pydantic.ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise BundleError(f"manifest.json: {where}: {error['msg']}", path=path) from None
    for name in members:
        if name not in (MANIFEST, SIGNATURE) and name not in files:
            raise BundleError(f"{name} is not in the manifest (added later?)", path=path)
    for name, digest in files.items():
        if name not in members:
            raise BundleError(f"{name} is missing (the manifest lists it)", path=path)
        if _sha256(members[name]) != digest:
            raise BundleError(f"{name} does not match its sha256 in the manifest", path=path)
        evidence = _EVIDENCE.match(name)
        if evidence and evidence.group(1) != digest:
            raise BundleError(f"{name} is not named by its hash", path=path)
    return Bundle(
        path=path,
        manifest=manifest,
        manifest_sha256=_sha256(members[MANIFEST]),
        members=members,
        key_id=signer,
        trusted=verify_key is not None,
    )


def _members(path: Path) -> dict[str, bytes]:
    """Every member's bytes, refusing unsafe or unexpected entries and oversized archives."""
    members: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            while (member := tar.next()) is not None:
                name = member.name
                if not member.isreg():
                    raise BundleError(f"unsafe member {name!r}: only regular files", path=path)
                if name.startswith("/") or ".." in name.split("/") or "\\" in name:
                    raise BundleError(f"unsafe member path {name!r}", path=path)
                if name not in (MANIFEST, SIGNATURE) and not (
                    _TARGET.match(name) or _EVIDENCE.match(name)
                ):
                    raise BundleError(f"unexpected member {name!r}", path=path)
                if name in members:
                    raise BundleError(f"member {name!r} appears twice", path=path)
                total += member.size
                if total > MAX_BYTES or len(members) >= MAX_MEMBERS:
                    raise BundleError("the bundle is larger than auditor reads", path=path)
                handle = tar.extractfile(member)
                assert handle is not None  # a regular file
                data = handle.read()
                if len(data) != member.size:
                    raise EOFError("member cut short")
                members[name] = data
    except FileNotFoundError as exc:
        raise BundleError("no such file", path=path) from exc
    except IsADirectoryError as exc:
        raise BundleError("is a directory, not a bundle", path=path) from exc
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, OSError) as exc:
        raise BundleError(f"truncated or corrupt bundle ({_why(exc)})", path=path) from exc
    return members


def _why(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _check_signature(
    path: Path, members: dict[str, bytes], verify_key: Ed25519PublicKey | None
) -> str | None:
    """The key id that signed the manifest, or None when unsigned (refused if a key is
    required). A signature that does not verify is refused whether or not a key is given."""
    if SIGNATURE not in members:
        if verify_key is not None:
            raise BundleError(
                "the bundle is not signed (--verify-key needs a signature)", path=path
            )
        return None
    try:
        signature = json.loads(members[SIGNATURE])
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(signature["public_key"]))
        raw = base64.b64decode(signature["signature"])
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"malformed manifest.sig: {_why(exc)}", path=path) from exc
    if verify_key is not None and _raw(public) != _raw(verify_key):
        raise BundleError(
            f"signed by key {key_id(public)}, not by the key given ({key_id(verify_key)})",
            path=path,
        )
    try:
        public.verify(raw, members[MANIFEST])
    except InvalidSignature as exc:
        raise BundleError("the signature does not match manifest.json", path=path) from exc
    return key_id(public)
