"""`auditor collect | verify | evaluate` end to end on a real bundle of this machine."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

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
    assert "files match their sha256" in result.out and "(the key given)" in result.out
    as_json = auditor_cli("verify", str(signed["path"]), "--format", "json")
    summary = json.loads(as_json.out)
    assert summary["verified"] and summary["signed"] and not summary["trusted_key"]
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
        result = auditor_cli(*args)
        assert result.code == 2
        assert "does not match its sha256 in the manifest" in error_line(result)


def test_a_truncated_bundle_and_a_wrong_key_are_refused(auditor_cli, signed, tmp_path):
    path = copy(signed["path"], tmp_path)
    path.write_bytes(path.read_bytes()[:-200])
    result = auditor_cli("verify", str(path))
    assert result.code == 2 and "truncated or corrupt bundle" in error_line(result)
    _, stranger = write_keys(tmp_path, "stranger")
    result = auditor_cli("verify", str(signed["path"]), "--verify-key", str(stranger))
    assert result.code == 2 and "not by the key given" in error_line(result)
    result = auditor_cli("evaluate", str(signed["path"]), "--verify-key", str(stranger))
    assert result.code == 2 and "not by the key given" in error_line(result)


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
        "--report", f"json:{report}",
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
    args = ["evaluate", str(signed["path"]), "--no-store", "--waivers", str(waivers), "-q"]
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
