"""`auditor collect | verify | evaluate` end to end on a real bundle of this machine."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from local_bundle import collect_local_bundle

from auditor.profiles import load_profile

LEFT_OUT = "host.sysctl"  # the bundle is collected without it: its checks must become `error`


def write_keys(directory: Path, name: str) -> tuple[Path, Path]:
    """An Ed25519 key pair: private key as OpenSSH (like ssh-keygen), public as PEM."""
    key = Ed25519PrivateKey.generate()
    private, public = directory / f"{name}", directory / f"{name}.pub.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    """A signed bundle of local://, collected with an overlay that leaves host.sysctl out."""
    directory = tmp_path_factory.mktemp("bundle")
    private, public = write_keys(directory, "signer")
    profile = load_profile()
    users = sorted(c.id for c in profile.checks if LEFT_OUT in c.facts)
    assert users, f"no check reads {LEFT_OUT}"
    overlay = directory / "no-sysctl.yaml"
    overlay.write_text(yaml.safe_dump({"extends": profile.id, "disable": users}))
    path = collect_local_bundle(directory, "--overlay", str(overlay), "--sign-key", str(private))
    return {"path": path, "public": public, "dir": directory, "sysctl_checks": users}


def copy(bundle: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy.tar.gz"
    shutil.copy(bundle, target)
    return target


def error_line(result) -> str:
    lines = [line for line in result.err.splitlines() if line.startswith("auditor: error:")]
    assert len(lines) == 1, result.err
    assert "Traceback" not in result.err
    return lines[0]


def test_verify_a_signed_bundle(auditor_cli, signed):
    result = auditor_cli("verify", str(signed["path"]), "--verify-key", str(signed["public"]))
    assert result.code == 0, result.err
    assert (
        "files match their sha256" in result.out and "signed by trusted key SHA256:" in result.out
    )
    as_json = auditor_cli(
        "verify", str(signed["path"]), "--format", "json", "--verify-key", str(signed["public"])
    )
    summary = json.loads(as_json.out)
    assert summary["verified"] and summary["signed"] and summary["trusted_key"]
    assert summary["untrusted"] is None
    assert summary["targets"] == ["local://"]
    with tarfile.open(signed["path"]) as tar:
        names = tar.getnames()
    assert names[:2] == ["manifest.json", "manifest.sig"]
    assert f"{LEFT_OUT}" not in json.dumps(
        json.loads(tar_member(signed["path"], "targets/0000.json"))["facts"]
    )


def tar_member(path: Path, name: str) -> bytes:
    with tarfile.open(path) as tar:
        handle = tar.extractfile(name)
        assert handle is not None
        return handle.read()


def test_a_tampered_bundle_is_refused_by_verify_and_evaluate(auditor_cli, signed, tmp_path):
    path = copy(signed["path"], tmp_path)
    with tarfile.open(path) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(path, "w:gz") as tar:
        for member, data in members:
            if member.name.startswith("evidence/") and b"debian" in data:
                data = data.replace(b"debian", b"talos!")
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    for args in (["verify", str(path)], ["evaluate", str(path), "--no-store"]):
        result = auditor_cli(*args, "--verify-key", str(signed["public"]))
        assert result.code == 2
        assert "does not match its sha256 in the manifest" in error_line(result)


def test_a_truncated_bundle_and_a_wrong_key_are_refused(auditor_cli, signed, tmp_path):
    path = copy(signed["path"], tmp_path)
    path.write_bytes(path.read_bytes()[:-200])
    result = auditor_cli("verify", str(path), "--allow-untrusted")
    assert result.code == 2 and "truncated or corrupt bundle" in error_line(result)
    _, stranger = write_keys(tmp_path, "stranger")
    result = auditor_cli("verify", str(signed["path"]), "--verify-key", str(stranger))
    assert result.code == 2 and "which is not a trusted key" in error_line(result)
    result = auditor_cli("evaluate", str(signed["path"]), "--verify-key", str(stranger))
    assert result.code == 2 and "which is not a trusted key" in error_line(result)
    for args in (["verify", str(signed["path"])], ["evaluate", str(signed["path"])]):
        result = auditor_cli(*args)  # no key given, none configured: the bundle's own is no use
        assert result.code == 2 and "no key is trusted" in error_line(result)


def test_evaluate_scores_offline_and_missing_facts_are_errors(auditor_cli, signed, tmp_path):
    db = tmp_path / "store.db"
    report = tmp_path / "results.json"
    result = auditor_cli(
        "evaluate", str(signed["path"]), "--verify-key", str(signed["public"]),
        "--db", str(db), "--quiet", "--report", f"json:{report}",
    )  # fmt: skip
    assert result.code in (0, 1), result.err
    document = json.loads(report.read_text())
    assert document["bundle"]["trusted_key"] is True
    assert document["bundle"]["manifest_sha256"] and document["run"]["complete"]
    by_check = {}
    for r in document["results"]:
        by_check.setdefault(r["check_id"], set()).add(r["status"])
    for check in signed["sysctl_checks"]:
        assert by_check[check] == {"error"}, check  # not collected: never a pass
    assert {"pass", "fail"} <= set().union(*by_check.values())
    missing = next(r for r in document["results"] if r["check_id"] == signed["sysctl_checks"][0])
    assert missing["message"] == f"fact {LEFT_OUT} was not collected"
    listed = json.loads(auditor_cli("runs", "list", "--db", str(db), "-f", "json").out)
    assert [(r["source"], r["id"]) for r in listed] == [("evaluate", document["run"]["id"])]


def test_evaluate_with_another_profile_version(auditor_cli, signed, tmp_path):
    from auditor.resources import benchmarks_dir

    newer = tmp_path / "nist-800-190"
    shutil.copytree(benchmarks_dir() / "nist-800-190", newer)
    manifest = newer / "profile.yaml"
    manifest.write_text(manifest.read_text().replace('version: "', 'version: "9.9-', 1))
    report = tmp_path / "results.json"
    result = auditor_cli(
        "evaluate", str(signed["path"]), "--profile", str(newer), "--no-store",
        "--report", f"json:{report}", "--verify-key", str(signed["public"]),
    )  # fmt: skip
    assert result.code in (0, 1), result.err
    assert "evaluated with nist-800-190 9.9-" in result.err
    document = json.loads(report.read_text())
    assert document["run"]["profile"]["version"].startswith("9.9-")
    assert document["bundle"]["profile"]["version"] == load_profile().version


def test_a_waiver_that_expires_mid_test_stops_applying(auditor_cli, signed, tmp_path):
    expires = datetime.now(UTC) + timedelta(seconds=6)
    waivers = tmp_path / "waivers.yaml"
    waivers.write_text(
        yaml.safe_dump(
            {
                "waivers": [
                    {
                        "id": "TEMP-1",
                        "check": "host.*",
                        "justification": "Accepted until the rebuild.",
                        "owner": "ops",
                        "expires": expires.isoformat().replace("+00:00", "Z"),
                    }
                ]
            }
        )
    )
    args = ["evaluate", str(signed["path"]), "--no-store", "--waivers", str(waivers), "-q",
            "--verify-key", str(signed["public"])]  # fmt: skip
    before = tmp_path / "before.json"
    result = auditor_cli(*args, "--report", f"json:{before}")
    assert result.code in (0, 1), result.err
    assert datetime.now(UTC) < expires, "the machine was too slow for this test's timing"
    waived = [r for r in json.loads(before.read_text())["results"] if r["status"] == "waived"]
    assert waived and all(r["waiver"]["id"] == "TEMP-1" for r in waived)
    assert {r["waiver"]["status"] for r in waived} <= {"fail", "error"}
    assert "waiver TEMP-1 expires in 0" in result.err  # within the warning window

    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.5)
    after = tmp_path / "after.json"
    result = auditor_cli(*args, "--report", f"json:{after}")
    document = json.loads(after.read_text())
    assert not [r for r in document["results"] if r["status"] == "waived"]
    by_key = {(r["check_id"], r["subject"]["name"]): r["status"] for r in document["results"]}
    for r in waived:  # the real status is back
        assert by_key[(r["check_id"], r["subject"]["name"])] == r["waiver"]["status"]
    assert [w["id"] for w in document["waivers"]["expired"]] == ["TEMP-1"]
    assert "waiver TEMP-1 expired on" in result.err


def test_collect_refuses_a_bad_key_before_collecting(auditor_cli, tmp_path):
    key = tmp_path / "not-a-key"
    key.write_text("hello")
    started = time.monotonic()
    result = auditor_cli("collect", "-o", str(tmp_path / "b.tar.gz"), "--sign-key", str(key))
    assert result.code == 2 and "not a private key" in error_line(result)
    assert time.monotonic() - started < 5 and not (tmp_path / "b.tar.gz").exists()


def forge(bundle: Path, tmp_path: Path, change) -> Path:
    """A copy of `bundle` whose members `change(name, data)` rewrites (None drops one), with
    the manifest's hashes made to match again and no signature: what a forger can do."""
    import hashlib

    path = tmp_path / "forged.tar.gz"
    with tarfile.open(bundle) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    members.pop("manifest.sig")
    members = {n: d for n, d in ((n, change(n, d)) for n, d in members.items()) if d is not None}
    manifest = json.loads(members["manifest.json"])
    renamed = {}
    for name, data in list(members.items()):
        if name.startswith("evidence/"):
            digest = hashlib.sha256(data).hexdigest()
            renamed[name] = f"evidence/{digest}.json"
    for old, new in renamed.items():
        members[new] = members.pop(old)
    for name, data in list(members.items()):
        if name.startswith("targets/"):
            for old, new in renamed.items():
                data = data.replace(old[9:-5].encode(), new[9:-5].encode())
            members[name] = data
    manifest["files"] = {
        n: hashlib.sha256(d).hexdigest() for n, d in sorted(members.items()) if n != "manifest.json"
    }
    members["manifest.json"] = json.dumps(manifest).encode()
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def ssh_sign(path: Path, key: Path) -> None:
    """Sign a bundle's manifest with `ssh-keygen -Y sign` and put the signature in it."""
    import subprocess

    with tarfile.open(path) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    manifest = path.parent / "manifest.json"
    manifest.write_bytes(members["manifest.json"])
    subprocess.run(["ssh-keygen", "-Y", "sign", "-f", str(key), "-n", "auditor-bundle",
                    str(manifest)], check=True, capture_output=True, timeout=30)  # fmt: skip
    members["manifest.sig"] = (path.parent / "manifest.json.sig").read_bytes()
    (path.parent / "manifest.json.sig").unlink()
    with tarfile.open(path, "w:gz") as tar:
        for name in [
            "manifest.json",
            "manifest.sig",
            *sorted(set(members) - {"manifest.json", "manifest.sig"}),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(members[name])
            tar.addfile(info, io.BytesIO(members[name]))


def flip_a_fact(name: str, data: bytes) -> bytes:
    """The host's os-release made to say something else (a different judged fact)."""
    if name.startswith("evidence/") and b'"version_id"' in data:
        fact = json.loads(data)
        fact["id"] = "forged"
        return json.dumps(fact, sort_keys=True, separators=(",", ":")).encode()
    return data


def test_edited_facts_re_signed_with_another_key_are_refused(auditor_cli, signed, tmp_path):
    import subprocess

    forged = forge(signed["path"], tmp_path, flip_a_fact)
    with tarfile.open(forged) as tar:
        evidence = [tar.extractfile(m).read() for m in tar if m.name.startswith("evidence/")]
    assert any(b'"forged"' in data for data in evidence)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "evil")],
                   check=True, timeout=30)  # fmt: skip
    ssh_sign(forged, tmp_path / "evil")
    trusted = ["--verify-key", str(signed["public"])]
    for command in ("verify", "evaluate"):
        result = auditor_cli(
            command, str(forged), *trusted, *(["--no-store"] * (command == "evaluate"))
        )
        assert result.code == 2, result.out
        assert "which is not a trusted key" in error_line(result)
        # it is a valid signature, only by the wrong key: trusting that key lets it through
        assert (
            auditor_cli("verify", str(forged), "--verify-key", str(tmp_path / "evil.pub")).code == 0
        )


def test_a_deleted_signature_is_refused(auditor_cli, signed, tmp_path):
    stripped = forge(signed["path"], tmp_path, lambda name, data: data)
    for command in ("verify", "evaluate"):
        result = auditor_cli(command, str(stripped), "--verify-key", str(signed["public"]))
        assert result.code == 2 and "the bundle is not signed" in error_line(result)
        assert "--allow-untrusted" in result.err  # the hint says how to read it anyway
    anyway = auditor_cli("verify", str(stripped), "--allow-untrusted")
    assert anyway.code == 0 and "UNTRUSTED: the bundle is not signed" in anyway.out


def test_the_trusted_keys_file_makes_a_bundle_trusted(auditor_cli, signed, tmp_path, monkeypatch):
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    key = load_pem_public_key(signed["public"].read_bytes())
    line = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    config = tmp_path / "config"
    (config / "auditor").mkdir(parents=True)
    (config / "auditor" / "trusted-keys").write_bytes(b"assessors " + line + b" team key\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    result = auditor_cli("verify", str(signed["path"]))
    assert result.code == 0, result.err
    assert "signed by trusted key SHA256:" in result.out


def test_allow_untrusted_marks_every_output(auditor_cli, signed, tmp_path):
    import subprocess

    stripped = forge(signed["path"], tmp_path, lambda name, data: data)
    db = tmp_path / "store.db"
    out = {fmt: tmp_path / f"report.{fmt}" for fmt in
           ("json", "html", "pdf", "markdown", "sarif", "oscal", "junit")}  # fmt: skip
    result = auditor_cli(
        "evaluate", str(stripped), "--allow-untrusted", "--db", str(db), "-r", "terminal:-",
        *[arg for fmt, path in out.items() for arg in ("-r", f"{fmt}:{path}")],
    )  # fmt: skip
    assert result.code in (0, 1), result.err
    assert "warning: UNTRUSTED bundle" in result.err
    assert result.out.startswith("UNTRUSTED EVIDENCE: the bundle is not signed")
    document = json.loads(out["json"].read_text())
    assert document["untrusted"] == "the bundle is not signed"
    assert document["bundle"]["trusted_key"] is False
    schema = json.loads((Path(__file__).parents[2] / "docs" / "results.schema.json").read_text())
    jsonschema.validate(document, schema)
    assert "UNTRUSTED EVIDENCE" in out["html"].read_text()
    pdf = subprocess.run(["pdftotext", "-l", "1", str(out["pdf"]), "-"], capture_output=True,
                         text=True, check=True, timeout=60).stdout  # fmt: skip
    assert "UNTRUSTED EVIDENCE" in pdf
    assert "UNTRUSTED EVIDENCE" in out["markdown"].read_text()
    sarif = json.loads(out["sarif"].read_text())
    assert sarif["runs"][0]["properties"]["untrusted"] == "the bundle is not signed"
    oscal = json.loads(out["oscal"].read_text())
    props = oscal["assessment-results"]["results"][0]["props"]
    assert {"untrusted": "the bundle is not signed"}.items() <= {
        p["name"]: p["value"] for p in props
    }.items()
    assert 'name="auditor.untrusted" value="the bundle is not signed"' in out["junit"].read_text()
    listed = json.loads(auditor_cli("runs", "list", "--db", str(db), "-f", "json").out)
    assert listed[0]["untrusted"] == "the bundle is not signed"
    assert "evaluate UNTRUSTED" in auditor_cli("runs", "list", "--db", str(db)).out
    again = tmp_path / "again.json"
    assert auditor_cli("report", listed[0]["id"], "--db", str(db), "-r", f"json:{again}").code == 0
    assert json.loads(again.read_text())["untrusted"] == "the bundle is not signed"
    # the trusted run says nothing of the kind
    trusted = auditor_cli("evaluate", str(signed["path"]), "--verify-key", str(signed["public"]),
                          "--no-store", "-r", "terminal:-")  # fmt: skip
    assert "UNTRUSTED" not in trusted.out + trusted.err
