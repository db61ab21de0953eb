"""OSCAL catalog and profile exports validate against the official OSCAL 1.1.3 schemas."""

import json

import pytest
from schemas import oscal_errors

from auditor.oscal import catalog, control_id, oscal_profile
from auditor.views import load_named


@pytest.mark.parametrize("name", ["nist-800-190", "cis-docker", "pss-restricted"])
def test_catalog_and_profile_are_valid_oscal(name):
    profile = load_named(name)
    exported = catalog(profile)
    assert oscal_errors("catalog", exported) == []
    selected = oscal_profile(profile)
    assert oscal_errors("profile", selected) == []
    ids = {c["id"] for g in exported["catalog"]["groups"] for c in g["controls"]}
    assert ids == set(selected["profile"]["imports"][0]["include-controls"][0]["with-ids"])
    assert ids == {control_id(profile.id, e.control.id) for e in profile.controls}


def test_every_800_190_control_is_in_the_catalog_with_its_text_and_checks():
    profile = load_named("nist-800-190")
    exported = catalog(profile)["catalog"]
    controls = {c["id"]: c for g in exported["groups"] for c in g["controls"]}
    control = controls["nist-800-190-4.5.4"]
    assert control["parts"][0]["name"] == "statement"
    assert any(
        p["name"] == "check" and p["value"] == "host.sshd.no-root-login" for p in control["props"]
    )
    assert exported["metadata"]["oscal-version"] == "1.1.3"


def test_a_broken_catalog_is_rejected_by_the_validator():
    profile = load_named("nist-800-190")
    exported = catalog(profile)
    exported["catalog"]["groups"][0]["controls"][0]["id"] = "1 bad id"
    assert oscal_errors("catalog", exported)


def test_export_command_writes_files(auditor_cli, tmp_path):
    out = tmp_path / "catalog.json"
    result = auditor_cli(
        "profiles", "export", "nist-800-190", "--format", "oscal-catalog", "-o", str(out)
    )
    assert result.code == 0, result.err
    assert oscal_errors("catalog", json.loads(out.read_text())) == []
    printed = auditor_cli("profiles", "export", "nist-800-190", "--format", "oscal-profile")
    assert printed.code == 0 and oscal_errors("profile", json.loads(printed.out)) == []
