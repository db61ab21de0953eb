"""Evidence bundles: facts collected now, judged later, elsewhere, by someone else.

A bundle is a gzip tar of regular files only:

    manifest.json          schema, tool and profile versions, time, targets, and the sha256
                           of every other member
    manifest.sig           an OpenSSH signature (SSHSIG, Ed25519, namespace auditor-bundle)
                           over the bytes of manifest.json: `ssh-keygen -Y verify` checks it
    targets/0000.json      one target: name, URL, kind, times, error, variables, fact metadata
    evidence/<sha256>.json one fact's data (canonical JSON), named by its hash

Reading refuses, with one line naming the problem, anything that is not exactly that: a
truncated or corrupt archive, links, absolute or `..` paths, unexpected or missing members, a
hash or a signature that does not match. A bundle is trusted only when a key the user
trusts (`--verify-key`, or the trusted-keys file) signed it; the public key a signature
carries only says which key to look for, never that it is trusted. An unsigned or untrusted
bundle is refused unless the caller allows it, and is then marked untrusted.
Nothing is ever extracted to disk.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import tarfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pydantic
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field

from auditor import __version__
from auditor.config import TargetSpec
from auditor.document import fact_record
from auditor.errors import InputError
from auditor.evidence_spool import EvidenceSpool
from auditor.facts import utc_now
from auditor.model import Fact, TargetKind, TargetRecord
from auditor.profiles import LoadedProfile
from auditor.redact import redact
from auditor.regularfile import UnreadableFile, check_regular_file, read_regular_file
from auditor.sshsig import SignatureFormatError, fingerprint, parse, raw_public, sign

SCHEMA = "auditor-bundle/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
MAX_MEMBERS = 200_000
MAX_BYTES = 2 * 1024**3  # uncompressed; a bundle bigger than this is refused, not read
MAX_MEMBER_BYTES = 512 * 1024**2  # one member (one fact's evidence), uncompressed
# An extended header (PAX, GNU long name) is parsed whole, and Python 3.11's parser takes time
# quadratic in its length (CVE-2024-6232: a header of digits costs minutes of CPU). auditor
# writes none at all (its member names are short); 4 KiB leaves room for another writer's.
MAX_HEADER_BYTES = 4096
_EXTENDED_HEADERS = frozenset(
    {tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME,
     tarfile.GNUTYPE_LONGLINK}
)  # fmt: skip
_TARGET = re.compile(r"^targets/[0-9]{4,6}\.json$")
_EVIDENCE = re.compile(r"^evidence/([0-9a-f]{64})\.json$")
PASSWORD_ENV = "AUDITOR_SIGN_KEY_PASSWORD"
NAMESPACE = "auditor-bundle"  # the SSH signature namespace (ssh-keygen -Y ... -n)
TRUSTED_KEYS_ENV = "AUDITOR_TRUSTED_KEYS"
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


def key_id(key: Ed25519PublicKey) -> str:
    """A public key's OpenSSH fingerprint (`SHA256:...`, as `ssh-keygen -l` prints it)."""
    return fingerprint(raw_public(key))


def trusted_keys_file() -> Path:
    """The trusted-keys file: $AUDITOR_TRUSTED_KEYS, else
    $XDG_CONFIG_HOME/auditor/trusted-keys (~/.config/auditor/trusted-keys)."""
    configured = os.environ.get(TRUSTED_KEYS_ENV)
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "auditor" / "trusted-keys"


def load_trusted_keys(path: Path) -> list[Ed25519PublicKey]:
    """The keys of a trusted-keys file; none when it does not exist.

    One key a line in OpenSSH's allowed_signers form (`[principals] ssh-ed25519 AAAA...
    [comment]`, so the same file serves `ssh-keygen -Y verify -f`); `#` comments and blank
    lines are ignored. A file others can write is refused: it would let them add a key.
    """
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(f"cannot read the trusted keys: {exc}", path=path) from exc
    if mode & 0o022:
        raise BundleError(
            "others can write this trusted-keys file: refused (chmod go-w)", path=path
        )
    keys = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        at = fields.index("ssh-ed25519") if "ssh-ed25519" in fields else -1
        try:
            if at < 0 or at + 1 >= len(fields):
                raise ValueError("no `ssh-ed25519 AAAA...` key on the line")
            key: Any = serialization.load_ssh_public_key(f"ssh-ed25519 {fields[at + 1]}".encode())
        except ValueError as exc:
            raise BundleError(f"not an Ed25519 public key: {exc}", path=path, line=number) from exc
        keys.append(key)
    return keys


# --- writing -------------------------------------------------------------------------------


def write_bundle(
    path: Path,
    profile: LoadedProfile,
    collected: list[tuple[TargetSpec, TargetRecord]],
    *,
    sign_key: Ed25519PrivateKey | None = None,
    started_at: str | None = None,
    evidence: EvidenceSpool | None = None,
) -> dict[str, Any]:
    """Write the bundle atomically (a temporary file renamed into place); returns the
    manifest. The facts' data comes from `evidence` when given (the records' facts then hold
    none: `auditor collect` spools each target's as it arrives), and is streamed into the
    archive one piece at a time."""
    owned = evidence is None
    if evidence is None:
        evidence = EvidenceSpool()
        collected = [(spec, evidence.keep(record)) for spec, record in collected]
    try:
        return _write(path, profile, collected, evidence, sign_key, started_at)
    finally:
        if owned:
            evidence.close()


def _write(
    path: Path,
    profile: LoadedProfile,
    collected: list[tuple[TargetSpec, TargetRecord]],
    evidence: EvidenceSpool,
    sign_key: Ed25519PrivateKey | None,
    started_at: str | None,
) -> dict[str, Any]:
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
        targets.append(
            {"name": record.name, "url": record.url, "kind": str(record.kind), "file": name}
        )
    # An evidence file is the canonical JSON its sha256 was taken over: its name is its hash
    # (checked again as it is written, below).
    files = {name: _sha256(data) for name, data in members.items()}
    files |= {f"evidence/{sha256}.json": sha256 for sha256 in evidence}
    manifest = {
        "schema": SCHEMA,
        "tool": "auditor",
        "tool_version": __version__,
        "started_at": started_at or utc_now(),
        "created_at": utc_now(),
        "profile": {"id": profile.id, "title": profile.title, "version": profile.version},
        "targets": targets,
        "files": dict(sorted(files.items())),
    }
    members[MANIFEST] = _json(manifest)
    if sign_key is not None:
        members[SIGNATURE] = sign(sign_key, members[MANIFEST], NAMESPACE).encode()
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with (
            staging.open("wb") as raw,
            gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz,
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            order = [MANIFEST, *([SIGNATURE] if SIGNATURE in members else [])]
            for name in order + sorted(files):
                if name.startswith("evidence/"):
                    data = evidence.raw(name.removeprefix("evidence/").removesuffix(".json"))
                    if _sha256(data) != files[name]:
                        raise AssertionError(f"spooled evidence {name} is not what it hashes")
                else:
                    data = members[name]
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
        staging.replace(path)
    except BaseException as exc:
        staging.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise BundleError(f"cannot write the bundle: {exc.strerror}", path=path) from exc
        raise
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
    untrusted: str | None  # why it is not trusted (read with allow_untrusted); None: trusted

    @property
    def trusted(self) -> bool:
        """Signed by a key the caller trusts."""
        return self.untrusted is None

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
            "untrusted": self.untrusted,
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


def read_bundle(
    path: Path,
    trusted_keys: Sequence[Ed25519PublicKey] = (),
    *,
    allow_untrusted: bool = False,
) -> Bundle:
    """Read and verify a bundle; BundleError (exit 2, one line) for anything amiss.

    It must be signed by one of `trusted_keys`; with `allow_untrusted`, an unsigned bundle
    or one signed by another key is read and marked untrusted. A signature that does not
    match the manifest is refused either way.
    """
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
    signer, untrusted = _check_signature(path, members, trusted_keys)
    if untrusted is not None and not allow_untrusted:
        raise BundleError(
            untrusted,
            path=path,
            hint="trust the signer with --verify-key KEY or in "
            f"{trusted_keys_file()}, or read it anyway with --allow-untrusted",
        )
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
        untrusted=untrusted,
    )


class _BoundedTarInfo(tarfile.TarInfo):
    """A tar header whose size is checked before tarfile reads or parses what follows it."""

    def _proc_member(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _EXTENDED_HEADERS and self.size > MAX_HEADER_BYTES:
            raise _Refused(
                f"an extended tar header of {self.size} bytes (auditor reads up to "
                f"{MAX_HEADER_BYTES})"
            )
        if self.size > MAX_MEMBER_BYTES:
            raise _Refused(
                f"member {self.name!r} of {self.size} bytes (auditor reads up to "
                f"{MAX_MEMBER_BYTES // 1024**2} MiB per member)"
            )
        member: tarfile.TarInfo = super()._proc_member(archive)  # type: ignore[misc]
        return member


class _Refused(Exception):
    """A header that _BoundedTarInfo refuses (not a TarError: tarfile would skip past one)."""


def _members(path: Path) -> dict[str, bytes]:
    """Every member's bytes, refusing unsafe or unexpected entries and oversized archives."""
    members: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(path, mode="r:gz", tarinfo=_BoundedTarInfo) as tar:
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
    except _Refused as exc:
        raise BundleError(f"the bundle is refused: {exc}", path=path) from exc
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
    path: Path, members: dict[str, bytes], trusted_keys: Sequence[Ed25519PublicKey]
) -> tuple[str | None, str | None]:
    """(the signer's key id or None when unsigned, why the bundle is not trusted or None).

    A signature that does not verify is refused outright. Trust comes only from
    `trusted_keys`: the key a signature names is looked up among them, and the signature is
    checked with the trusted key found, never with the key it carries."""
    if SIGNATURE not in members:
        return None, "the bundle is not signed"
    try:
        claimed = parse(members[SIGNATURE])
    except SignatureFormatError as exc:
        raise BundleError(f"malformed manifest.sig: {exc}", path=path) from exc
    if claimed.namespace != NAMESPACE:
        raise BundleError(
            f"manifest.sig is a signature for {claimed.namespace!r}, not {NAMESPACE!r}",
            path=path,
        )
    signer = fingerprint(claimed.public_key)
    trusted = next((k for k in trusted_keys if raw_public(k) == claimed.public_key), None)
    checker: Ed25519PublicKey = trusted or Ed25519PublicKey.from_public_bytes(claimed.public_key)
    if not claimed.verifies(checker, members[MANIFEST]):
        raise BundleError("the signature does not match manifest.json", path=path)
    if trusted is None:
        if not trusted_keys:
            return signer, f"signed by key {signer}, but no key is trusted"
        return signer, f"signed by key {signer}, which is not a trusted key"
    return signer, None
