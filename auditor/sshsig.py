"""OpenSSH signatures (the SSHSIG format of `ssh-keygen -Y sign`), Ed25519 only.

A bundle's manifest is signed in this format so that anyone can check it without auditor:
`ssh-keygen -Y verify -f allowed_signers -I NAME -n auditor-bundle -s manifest.sig <
manifest.json`, and a manifest signed with `ssh-keygen -Y sign -n auditor-bundle` is one
auditor accepts. The format is OpenSSH's PROTOCOL.sshsig: a blob holding the signer's public
key, the namespace, the hash algorithm and the signature over a preamble plus the message's
hash, armoured as base64 between `-----BEGIN SSH SIGNATURE-----` lines.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

_MAGIC = b"SSHSIG"
_VERSION = 1
_KEY_TYPE = b"ssh-ed25519"
_BEGIN = "-----BEGIN SSH SIGNATURE-----"
_END = "-----END SSH SIGNATURE-----"
_HASHES = {"sha256": hashlib.sha256, "sha512": hashlib.sha512}


class SignatureFormatError(ValueError):
    """Text that is not an Ed25519 SSH signature."""


@dataclass(frozen=True)
class SshSignature:
    """A parsed SSH signature: who claims to have signed, for which namespace, and how."""

    public_key: bytes  # raw 32-byte Ed25519 key, as the signature claims it: not yet trusted
    namespace: str
    hash_algorithm: str
    signature: bytes  # raw 64-byte Ed25519 signature

    def verifies(self, key: Ed25519PublicKey, message: bytes) -> bool:
        """Whether `key` (which the caller trusts) made this signature over `message`."""
        try:
            key.verify(self.signature, _signed_data(self.namespace, self.hash_algorithm, message))
        except InvalidSignature:
            return False
        return True


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _signed_data(namespace: str, hash_algorithm: str, message: bytes) -> bytes:
    digest = _HASHES[hash_algorithm](message).digest()
    return (
        _MAGIC
        + _string(namespace.encode())
        + _string(b"")
        + _string(hash_algorithm.encode())
        + _string(digest)
    )


def public_blob(raw: bytes) -> bytes:
    """The SSH wire form of an Ed25519 public key (what `ssh-ed25519 AAAA...` encodes)."""
    return _string(_KEY_TYPE) + _string(raw)


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(raw: bytes) -> str:
    """OpenSSH's fingerprint of a public key (`ssh-keygen -l`): SHA256:base64, unpadded."""
    digest = hashlib.sha256(public_blob(raw)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def sign(key: Ed25519PrivateKey, message: bytes, namespace: str) -> str:
    """The armoured SSH signature of `message` in `namespace` (sha512, as ssh-keygen)."""
    signature = key.sign(_signed_data(namespace, "sha512", message))
    blob = (
        _MAGIC
        + struct.pack(">I", _VERSION)
        + _string(public_blob(raw_public(key.public_key())))
        + _string(namespace.encode())
        + _string(b"")
        + _string(b"sha512")
        + _string(_string(_KEY_TYPE) + _string(signature))
    )
    encoded = base64.b64encode(blob).decode()
    lines = [encoded[i : i + 70] for i in range(0, len(encoded), 70)]
    return "\n".join([_BEGIN, *lines, _END]) + "\n"


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, size: int) -> bytes:
        if self.at + size > len(self.data):
            raise SignatureFormatError("cut short")
        chunk = self.data[self.at : self.at + size]
        self.at += size
        return chunk

    def string(self) -> bytes:
        (size,) = struct.unpack(">I", self.take(4))
        return self.take(size)


def parse(text: bytes) -> SshSignature:
    """An armoured SSH signature; SignatureFormatError for anything else or another key type."""
    try:
        lines = text.decode("ascii").strip().splitlines()
    except UnicodeDecodeError as exc:
        raise SignatureFormatError("not ASCII armour") from exc
    if len(lines) < 3 or lines[0].strip() != _BEGIN or lines[-1].strip() != _END:
        raise SignatureFormatError(f"not an SSH signature ({_BEGIN} ... {_END})")
    try:
        blob = base64.b64decode("".join(line.strip() for line in lines[1:-1]), validate=True)
    except binascii.Error as exc:
        raise SignatureFormatError(f"bad base64: {exc}") from exc
    reader = _Reader(blob)
    if reader.take(6) != _MAGIC or struct.unpack(">I", reader.take(4))[0] != _VERSION:
        raise SignatureFormatError("not an SSHSIG version 1 blob")
    key = _Reader(reader.string())
    namespace = reader.string().decode("utf-8", "replace")
    reader.string()  # reserved
    hash_algorithm = reader.string().decode("ascii", "replace")
    signature = _Reader(reader.string())
    if key.string() != _KEY_TYPE or signature.string() != _KEY_TYPE:
        raise SignatureFormatError("not an Ed25519 (ssh-ed25519) signature")
    if hash_algorithm not in _HASHES:
        raise SignatureFormatError(f"unknown hash algorithm {hash_algorithm!r}")
    raw_key, raw_signature = key.string(), signature.string()
    if len(raw_key) != 32 or len(raw_signature) != 64:
        raise SignatureFormatError("wrong Ed25519 key or signature length")
    return SshSignature(raw_key, namespace, hash_algorithm, raw_signature)
