"""Evidence bundles: a faithful round trip, and refusal of anything tampered, cut or unsafe."""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auditor.bundle import (
    MANIFEST,
    NAMESPACE,
    SIGNATURE,
    BundleError,
    key_id,
    load_private_key,
    load_public_key,
    load_trusted_keys,
    read_bundle,
    trusted_keys_file,
    write_bundle,
)
from auditor.config import TargetSpec
from auditor.facts import failed_fact, new_fact
from auditor.model import TargetKind, TargetRecord
from auditor.profiles import load_profile


@pytest.fixture(scope="module")
def profile():
    return load_profile()


def records() -> list[tuple[TargetSpec, TargetRecord]]:
    facts = (
        new_fact("host.os", "web1", {"id": "debian", "version_id": "12"}, source="cat os-release"),
        new_fact(
            "host.file_modes",
            "web1",
            [{"path": "/etc/passwd", "mode": "0644", "owner": "root", "exists": True}],
            source="stat",
            status=0,
        ),
        failed_fact("host.audit", "web1", "auditctl: permission denied", source="auditctl -s"),
    )
    web1 = TargetRecord(
        "web1", "ssh://web1", TargetKind.HOST, "2026-01-01T00:00:00.000Z",
        "2026-01-01T00:00:05.000Z", facts=facts,
    )  # fmt: skip
    dead = TargetRecord(
        "db1", "ssh://db1", TargetKind.HOST, "2026-01-01T00:00:00.000Z",
        "2026-01-01T00:00:10.000Z", error="connection refused",
    )  # fmt: skip
    return [
        (TargetSpec("ssh://web1", name="web1", variables={"host_paths": ["/etc/passwd"]}), web1),
        (TargetSpec("ssh://db1", name="db1"), dead),
    ]


def keypair(tmp_path: Path, name: str = "key") -> tuple[Path, Path]:
    key = Ed25519PrivateKey.generate()
    private = tmp_path / f"{name}.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = tmp_path / f"{name}.pub"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
    )
    return private, public


def test_round_trip_keeps_every_fact_and_target(tmp_path, profile):
    path = tmp_path / "b.tar.gz"
    written = records()
    manifest = write_bundle(path, profile, written)
    bundle = read_bundle(path, allow_untrusted=True)
    assert bundle.key_id is None and not bundle.trusted
    assert bundle.untrusted == "the bundle is not signed"
    assert manifest["profile"]["id"] == profile.id
    (web1, web1_vars), (db1, _) = bundle.records()
    assert web1 == written[0][1]  # facts, data, hashes, times, errors: all equal
    assert web1_vars == {"host_paths": ["/etc/passwd"]}
    assert db1.error == "connection refused" and db1.facts == ()
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, nothing left behind


def test_records_whose_evidence_was_spooled_make_the_same_bundle(tmp_path, profile):
    """`auditor collect` spools each target's facts as it arrives: the bundle is the one the
    records with their data would make, byte for byte."""
    from auditor.evidence_spool import EvidenceSpool

    whole, spooled = tmp_path / "whole.tar.gz", tmp_path / "spooled.tar.gz"
    written = records()
    started = "2026-01-01T00:00:00.000Z"
    write_bundle(whole, profile, written, started_at=started)
    spool = EvidenceSpool()
    kept = [(spec, spool.keep(record)) for spec, record in written]
    assert all(fact.data is None for _, record in kept for fact in record.facts)
    write_bundle(spooled, profile, kept, started_at=started, evidence=spool)

    def members(path: Path) -> dict[str, bytes]:
        with tarfile.open(path) as tar:
            files = {m.name: tar.extractfile(m) for m in tar.getmembers()}
            assert all(f is not None for f in files.values())  # a bundle holds files only
            return {name: f.read() for name, f in files.items() if f is not None}

    ours, theirs = members(whole), members(spooled)
    assert ours.keys() == theirs.keys()
    for name in ours.keys() - {MANIFEST}:  # the manifest says when it was created
        assert ours[name] == theirs[name], name
    assert json.loads(ours[MANIFEST])["files"] == json.loads(theirs[MANIFEST])["files"]
    (web1, _), _ = read_bundle(spooled, allow_untrusted=True).records()
    assert web1 == written[0][1]
    spool.close()


def test_signed_bundle_is_trusted_only_with_a_trusted_key(tmp_path, profile):
    private, public = keypair(tmp_path)
    _, other_public = keypair(tmp_path, "other")
    path = tmp_path / "b.tar.gz"
    write_bundle(path, profile, records(), sign_key=load_private_key(private))
    bundle = read_bundle(path, [load_public_key(other_public), load_public_key(public)])
    assert bundle.trusted and bundle.untrusted is None
    assert bundle.key_id == key_id(load_public_key(public)) and bundle.key_id.startswith("SHA256:")
    # the key the signature carries never makes it trusted
    with pytest.raises(BundleError, match="no key is trusted"):
        read_bundle(path)
    with pytest.raises(BundleError, match="which is not a trusted key") as caught:
        read_bundle(path, [load_public_key(other_public)])
    assert "--allow-untrusted" in caught.value.hint
    untrusted = read_bundle(path, [load_public_key(other_public)], allow_untrusted=True)
    assert not untrusted.trusted and "not a trusted key" in untrusted.untrusted


def test_unsigned_bundle_is_refused_unless_allowed(tmp_path, profile):
    _, public = keypair(tmp_path)
    path = tmp_path / "b.tar.gz"
    write_bundle(path, profile, records())
    with pytest.raises(BundleError, match="not signed"):
        read_bundle(path, [load_public_key(public)])
    assert read_bundle(path, allow_untrusted=True).untrusted == "the bundle is not signed"


def test_deleted_signature_is_refused(tmp_path, profile):
    private, public = keypair(tmp_path)
    path = tmp_path / "b.tar.gz"
    write_bundle(path, profile, records(), sign_key=load_private_key(private))
    rewrite(path, lambda name, data: None if name == SIGNATURE else data)
    with pytest.raises(BundleError, match="not signed"):
        read_bundle(path, [load_public_key(public)])


def test_edited_and_re_signed_with_another_key_is_refused(tmp_path, profile):
    """The attack of issue 16: change a fact, fix the manifest's hashes, sign with any key."""
    private, public = keypair(tmp_path)
    forger, _ = keypair(tmp_path, "forger")
    path = tmp_path / "b.tar.gz"
    write_bundle(path, profile, records(), sign_key=load_private_key(private))
    forged = records()
    spec, record = forged[0]
    facts = tuple(
        new_fact(f.name, f.target, {"id": "talos", "version_id": "1"}, source=f.source)
        if f.name == "host.os"
        else f
        for f in record.facts
    )
    forged[0] = (spec, dataclasses.replace(record, facts=facts))
    write_bundle(path, profile, forged, sign_key=load_private_key(forger))
    with pytest.raises(BundleError, match="which is not a trusted key"):
        read_bundle(path, [load_public_key(public)])


def test_trusted_keys_file_in_allowed_signers_form(tmp_path, profile, monkeypatch):
    private, public = keypair(tmp_path)
    path = tmp_path / "b.tar.gz"
    write_bundle(path, profile, records(), sign_key=load_private_key(private))
    trusted = tmp_path / "config" / "auditor" / "trusted-keys"
    trusted.parent.mkdir(parents=True)
    trusted.write_text(f"# the audit team\nauditors@example.org {public.read_text().strip()} a\n")
    trusted.chmod(0o644)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    assert trusted_keys_file() == trusted
    assert read_bundle(path, load_trusted_keys(trusted_keys_file())).trusted
    trusted.chmod(0o666)
    with pytest.raises(BundleError, match="others can write"):
        load_trusted_keys(trusted)
    trusted.chmod(0o600)
    trusted.write_text("ops ssh-rsa AAAAB3NzaC1yc2E\n")
    with pytest.raises(BundleError, match=r"trusted-keys:1: not an Ed25519 public key"):
        load_trusted_keys(trusted)
    assert load_trusted_keys(tmp_path / "absent") == []


def test_signature_is_checked_by_ssh_keygen_and_ssh_keygen_signatures_are_read(tmp_path, profile):
    """The signature is OpenSSH's SSHSIG: `ssh-keygen -Y verify` checks ours, and a manifest
    signed by `ssh-keygen -Y sign` is one auditor trusts."""
    private, public = keypair(tmp_path)
    path = tmp_path / "b.tar.gz"
    write_bundle(path, profile, records(), sign_key=load_private_key(private))
    members = tar_members(path)
    (tmp_path / "manifest.json").write_bytes(members[MANIFEST])
    (tmp_path / "manifest.sig").write_bytes(members[SIGNATURE])
    signers = tmp_path / "allowed_signers"
    signers.write_text(f"auditor {public.read_text().strip()}\n")
    verified = subprocess.run(
        ["ssh-keygen", "-Y", "verify", "-f", str(signers), "-I", "auditor", "-n", NAMESPACE,
         "-s", str(tmp_path / "manifest.sig")],
        input=members[MANIFEST], capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    assert b'Good "auditor-bundle" signature for auditor' in verified.stdout
    tampered = subprocess.run(
        ["ssh-keygen", "-Y", "verify", "-f", str(signers), "-I", "auditor", "-n", NAMESPACE,
         "-s", str(tmp_path / "manifest.sig")],
        input=members[MANIFEST] + b" ", capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    assert tampered.returncode != 0

    # the other way: a key made and used by ssh-keygen alone
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "ops")],
        check=True, timeout=30,
    )  # fmt: skip
    subprocess.run(
        ["ssh-keygen", "-Y", "sign", "-f", str(tmp_path / "ops"), "-n", NAMESPACE,
         str(tmp_path / "manifest.json")],
        check=True, timeout=30, capture_output=True,
    )  # fmt: skip
    theirs = (tmp_path / "manifest.json.sig").read_bytes()
    rewrite(path, lambda name, data: theirs if name == SIGNATURE else data)
    bundle = read_bundle(path, [load_public_key(tmp_path / "ops.pub")])
    assert bundle.trusted
    fingerprint = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(tmp_path / "ops.pub")],
        check=True, timeout=30, capture_output=True, text=True,
    ).stdout.split()[1]  # fmt: skip
    assert bundle.key_id == fingerprint


def tar_members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def rewrite(path: Path, change) -> None:
    """Rewrite a bundle member by member; `change(name, data)` returns new data or None."""
    with tarfile.open(path, "r:gz") as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for member, data in members:
            data = change(member.name, data)
            if data is None:
                continue
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    path.write_bytes(buffer.getvalue())


def test_tampered_evidence_is_refused(tmp_path, profile):
    path = tmp_path / "b.tar.gz"
    write_bundle(path, profile, records())

    def tamper(name, data):
        return data.replace(b"debian", b"talos") if name.startswith("evidence/") else data

    rewrite(path, tamper)
    with pytest.raises(BundleError) as caught:
        read_bundle(path, allow_untrusted=True)
    assert "does not match its sha256 in the manifest" in str(caught.value)
    assert str(caught.value).startswith(str(path))


def test_tampered_manifest_breaks_the_signature(tmp_path, profile):
    private, public = keypair(tmp_path)
    path = tmp_path / "b.tar.gz"
    write_bundle(path, profile, records(), sign_key=load_private_key(private))

    def tamper(name, data):
        if name != MANIFEST:
            return data
        manifest = json.loads(data)
        manifest["created_at"] = "2020-01-01T00:00:00.000Z"
        return json.dumps(manifest).encode()

    rewrite(path, tamper)
    with pytest.raises(BundleError, match="signature does not match"):
        read_bundle(path)  # refused even without --verify-key
    with pytest.raises(BundleError, match="signature does not match"):
        read_bundle(path, [load_public_key(public)])


def test_removed_and_added_members_are_refused(tmp_path, profile):
    path = tmp_path / "b.tar.gz"
    write_bundle(path, profile, records())
    rewrite(path, lambda name, data: None if name.startswith("evidence/") else data)
    with pytest.raises(BundleError, match="is missing"):
        read_bundle(path, allow_untrusted=True)
    write_bundle(path, profile, records())
    extra = b'{"x": 1}'
    with tarfile.open(path, "r:gz") as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for member, data in members:
            tar.addfile(member, io.BytesIO(data))
        info = tarfile.TarInfo("targets/0009.json")
        info.size = len(extra)
        tar.addfile(info, io.BytesIO(extra))
    path.write_bytes(buffer.getvalue())
    with pytest.raises(BundleError, match="not in the manifest"):
        read_bundle(path, allow_untrusted=True)


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_truncated_bundle_is_refused(tmp_path, profile, keep):
    path = tmp_path / "b.tar.gz"
    write_bundle(path, profile, records())
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(BundleError, match="truncated or corrupt bundle"):
        read_bundle(path, allow_untrusted=True)


def unsafe_bundle(path: Path, info: tarfile.TarInfo, data: bytes = b"") -> None:
    with gzip.open(path, "wb") as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        tar.addfile(info, io.BytesIO(data) if data else None)


@pytest.mark.parametrize(
    ("name", "kind", "expected"),
    [
        ("/etc/passwd", tarfile.REGTYPE, "unsafe member path"),
        ("../../etc/cron.d/x", tarfile.REGTYPE, "unsafe member path"),
        ("evidence/../../x", tarfile.REGTYPE, "unsafe member path"),
        ("manifest.json", tarfile.SYMTYPE, "only regular files"),
        ("targets/0000.json", tarfile.LNKTYPE, "only regular files"),
        ("evidence", tarfile.DIRTYPE, "only regular files"),
        ("notes.txt", tarfile.REGTYPE, "unexpected member"),
    ],
)
def test_unsafe_members_are_refused(tmp_path, name, kind, expected):
    info = tarfile.TarInfo(name)
    info.type = kind
    data = b"x" if kind == tarfile.REGTYPE else b""
    info.size = len(data)
    if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
        info.linkname = "/etc/shadow"
    path = tmp_path / "evil.tar.gz"
    unsafe_bundle(path, info, data)
    with pytest.raises(BundleError, match=expected):
        read_bundle(path, allow_untrusted=True)
    assert not (tmp_path / "etc").exists()


def test_not_a_bundle(tmp_path):
    path = tmp_path / "plain.tar.gz"
    path.write_bytes(b"just text, not gzip")
    with pytest.raises(BundleError, match="truncated or corrupt"):
        read_bundle(path, allow_untrusted=True)
    with pytest.raises(BundleError, match="no such file"):
        read_bundle(tmp_path / "missing.tar.gz", allow_untrusted=True)


def test_keys_that_are_not_ed25519_are_refused(tmp_path):
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "ec.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(BundleError, match="not an Ed25519 key"):
        load_private_key(path)
    garbage = tmp_path / "garbage.pub"
    garbage.write_text("hello")
    with pytest.raises(BundleError, match="not a public key"):
        load_public_key(garbage)
