"""Profiles fail loudly at load time, naming file, line and item; overlays need no copy."""

import json
import textwrap
from pathlib import Path

import pytest

from auditor import engine
from auditor.errors import ProfileError
from auditor.facts import new_fact
from auditor.model import Severity, Status, TargetRecord
from auditor.profiles import json_schemas, load_profile, render_schema
from auditor.resources import benchmarks_dir

MANIFEST = """\
id: mini
title: Mini
version: "1"
variables:
  ids: {description: allowed ids, default: [debian]}
include: [host.yaml]
"""

CONTROLS = """\
section: {id: host-os, title: Host}
controls:
  - id: "4.5.1"
    title: Attack surface
    text: Keep it small.
    coverage: automated
    checks:
      - id: host.os.allowed
        title: OS is allowed
        severity: low
        target: host
        assert: "facts.host.os.id in vars.ids"
        remediation: Use an allowed OS.
"""


def write_profile(tmp_path: Path, controls: str = CONTROLS, manifest: str = MANIFEST) -> Path:
    (tmp_path / "profile.yaml").write_text(manifest)
    (tmp_path / "host.yaml").write_text(textwrap.dedent(controls))
    return tmp_path


def error_of(tmp_path, controls=CONTROLS, manifest=MANIFEST, overlays=()):
    write_profile(tmp_path, controls, manifest)
    with pytest.raises(ProfileError) as caught:
        load_profile(str(tmp_path), overlays)
    return caught.value


def test_shipped_profile_loads_and_every_check_has_references_and_remediation():
    profile = load_profile("nist-800-190")
    assert profile.checks
    for compiled in profile.checks:
        assert compiled.check.remediation
        assert compiled.check.references.nist_800_190, compiled.id


def test_every_host_check_says_why_and_maps_to_nist_800_53():
    """Issue 18: the host benchmark in our own words, each check with its rationale, and
    at least 150 of them; most carry a CIS Debian Linux item number."""
    host = [c for c in load_profile("nist-800-190").checks if c.check.target == "host"]
    assert len(host) >= 150
    for compiled in host:
        assert len(compiled.check.rationale) > 40, compiled.id
        assert compiled.check.references.nist_800_53, compiled.id
    assert sum(1 for c in host if c.check.references.cis_linux) > 100


def test_minimal_profile_loads(tmp_path):
    profile = load_profile(str(write_profile(tmp_path)))
    assert [c.id for c in profile.checks] == ["host.os.allowed"]
    assert profile.checks[0].facts == {"host.os"}


def test_unknown_key_names_file_line_and_check(tmp_path):
    err = error_of(
        tmp_path,
        CONTROLS.replace(
            "        severity: low\n", "        severity: low\n        sevrity: high\n"
        ),
    )
    assert err.path.endswith("host.yaml")
    assert err.line == 11
    assert err.item == "host.os.allowed"
    assert "unknown key 'sevrity'" in str(err)


def test_cel_syntax_error_is_a_load_error_with_line(tmp_path):
    err = error_of(tmp_path, CONTROLS.replace('in vars.ids"', 'in vars.ids &&"'))
    assert (err.line, err.item) == (12, "host.os.allowed")
    assert "assert:" in str(err) and "column" in str(err)


def test_unknown_fact_is_a_load_error(tmp_path):
    err = error_of(tmp_path, CONTROLS.replace("facts.host.os.id", "facts.host.osrelease.id"))
    assert "unknown fact 'host.osrelease'" in str(err)
    assert err.item == "host.os.allowed"


def test_fact_of_another_kind_is_a_load_error(tmp_path):
    err = error_of(tmp_path, CONTROLS.replace("facts.host.os.id", "facts.k8s.pods.id"))
    assert "is not a host fact" in str(err)


def test_duplicate_check_id_is_a_load_error(tmp_path):
    duplicate = CONTROLS + textwrap.indent(CONTROLS.split("    checks:\n")[1], "")
    err = error_of(tmp_path, duplicate)
    assert "duplicate check id" in str(err) and err.item == "host.os.allowed"


def test_malformed_yaml_names_the_line(tmp_path):
    err = error_of(tmp_path, CONTROLS.replace("title: OS is allowed", "title: [OS is allowed"))
    assert err.path.endswith("host.yaml") and err.line is not None
    assert "invalid YAML" in str(err)


def test_several_problems_are_reported_together(tmp_path):
    bad = CONTROLS.replace("facts.host.os.id", "facts.host.nope.id").replace(
        "title: OS is allowed", "title: OS is allowed\n        colour: red"
    )
    err = error_of(tmp_path, bad)
    assert "unknown key 'colour'" in str(err)


def test_overlay_adds_changes_and_disables_without_copying(tmp_path):
    write_profile(tmp_path)
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(
        textwrap.dedent("""\
        extends: mini
        variables: {ids: [flatcar]}
        severity: {host.os.allowed: critical}
        controls:
          - id: "org.1"
            title: Our own rule
            text: Hosts are named.
            coverage: automated
            checks:
              - id: org.host.named
                title: Host name set
                severity: medium
                target: host
                assert: "facts.host.os.hostname != ''"
                remediation: Name it.
        """)
    )
    profile = load_profile(str(tmp_path), [overlay])
    assert profile.variables["ids"] == ["flatcar"]
    by_id = {c.id: c for c in profile.checks}
    assert by_id["host.os.allowed"].check.severity is Severity.CRITICAL
    assert by_id["org.host.named"].control_id == "org.1"

    overlay.write_text("extends: mini\ndisable: [host.os.allowed]\n")
    assert [c.id for c in load_profile(str(tmp_path), [overlay]).checks] == []


def test_overlay_dangling_references_are_errors(tmp_path):
    write_profile(tmp_path)
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("extends: mini\ndisable: [no.such.check]\nvariables: {nope: 1}\n")
    with pytest.raises(ProfileError) as caught:
        load_profile(str(tmp_path), [overlay])
    text = "\n".join([str(caught.value), *caught.value.more])
    assert "no.such.check" in text and "overlay.yaml:2" in text
    assert "unknown variable" in text and "overlay.yaml:3" in text


def test_checked_in_json_schemas_are_current():
    for name, schema in json_schemas().items():
        path = benchmarks_dir() / name
        assert path.read_text() == render_schema(schema), (
            f"{path} is stale: run `auditor profiles schema --write benchmarks`"
        )
        json.loads(path.read_text())


def test_an_exemption_that_does_not_read_its_variable_is_a_load_error(tmp_path):
    controls = CONTROLS.replace(
        '        assert: "facts.host.os.id in vars.ids"\n',
        '        assert: "facts.host.os.id in vars.ids"\n'
        "        exempt: {ids: \"facts.host.os.id == 'flatcar'\"}\n",
    )
    err = error_of(tmp_path, controls)
    assert err.item == "host.os.allowed"
    assert "exempt: ids: the condition does not read vars.ids" in str(err)


def test_an_exempt_subject_is_skipped_naming_the_variable_before_where_is_asked(tmp_path):
    controls = CONTROLS.replace(
        '        assert: "facts.host.os.id in vars.ids"\n',
        '        assert: "facts.host.os.id in vars.ids"\n'
        '        exempt: {ids: "facts.host.os.id in vars.ids"}\n'
        "        where: \"facts.host.os.id != 'debian'\"\n",
    )
    profile = load_profile(str(write_profile(tmp_path, controls)))

    def judged(os_id: str) -> tuple[Status, str, dict]:
        fact = new_fact("host.os", "h", {"id": os_id}, source="test")
        kind = profile.checks[0].check.target
        record = TargetRecord("h", "local://", kind, "", "", facts=(fact,))
        (result,) = engine.evaluate(profile, record, profile.variables)
        return result.status, result.message, result.observed

    assert judged("debian") == (Status.SKIP, "exempt by vars.ids", {"host.os.id": "debian"})
    assert judged("alpine")[0] is Status.FAIL
