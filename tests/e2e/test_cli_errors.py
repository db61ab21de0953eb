"""Every exit code, and one clear line for every kind of bad input (no traceback)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

OVERLAY_HEAD = "extends: nist-800-190\n"
CHECK = """\
controls:
  - id: "org.1"
    title: Ours
    text: Our rule.
    coverage: automated
    checks:
      - id: org.check
        title: Ours
        severity: low
        target: host
        assert: "{assertion}"
        remediation: Fix it.
"""


def overlay(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "overlay.yaml"
    path.write_text(OVERLAY_HEAD + textwrap.dedent(body))
    return path


def one_error_line(result) -> str:
    lines = [line for line in result.err.splitlines() if line.startswith("auditor: error:")]
    assert lines, result.err
    assert "Traceback" not in result.err
    return lines[0]


@pytest.mark.parametrize(
    "body, expected",
    [
        ("controls: [\n", "overlay.yaml:3: invalid YAML"),
        (CHECK.format(assertion="facts.host.os.id =="), "overlay.yaml:12: org.check: assert:"),
        (
            CHECK.format(assertion="facts.host.nothing.id == 1"),
            "overlay.yaml:12: org.check: unknown fact 'host.nothing'",
        ),
        (
            CHECK.format(assertion="true").replace("org.check", "host.os.container-optimized"),
            "host.os.container-optimized: duplicate check id",
        ),
        ("disable: [no.such.check]\n", "overlay.yaml:2: no.such.check: no such check"),
        ("colour: red\n", "overlay.yaml:2: unknown key 'colour'"),
    ],
    ids=[
        "malformed-yaml",
        "cel-syntax",
        "unknown-fact",
        "duplicate-id",
        "dangling-disable",
        "unknown-key",
    ],
)
def test_bad_profile_input_exits_2_with_file_line_item(auditor_cli, tmp_path, body, expected):
    result = auditor_cli("run", "--target", "local://", "--overlay", str(overlay(tmp_path, body)))
    assert result.code == 2
    assert expected in one_error_line(result)


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--target", "ftp://somewhere"], "unknown target scheme 'ftp'"),
        (["--target", "ssh://"], "bad target URL 'ssh://'"),
        (["--target", "ssh://host:99999"], "bad port"),
        (["--target", "no-scheme"], "bad target URL 'no-scheme'"),
        (["--profile", "nope"], "unknown profile 'nope'"),
        (["--report", "word:out.doc"], "unknown report format 'word'"),
        (["--report", "json"], "bad --report 'json'"),
        (["--var", "nope=1"], "unknown profile variable 'nope'"),
    ],
)
def test_bad_arguments_exit_2(auditor_cli, args, expected):
    result = auditor_cli("run", *args)
    assert result.code == 2
    assert expected in one_error_line(result)


@pytest.mark.parametrize("value", ["-1", "many", "65"])
def test_a_bad_worker_count_exits_2(auditor_cli, monkeypatch, value):
    flag = auditor_cli("run", "--workers", value)
    monkeypatch.setenv("AUDITOR_WORKERS", value)
    for result in (flag, auditor_cli("run")):
        assert result.code == 2
        assert "Invalid value for '--workers'" in result.err and "Traceback" not in result.err


def test_unreadable_inventory(auditor_cli, tmp_path):
    result = auditor_cli("run", "--inventory", str(tmp_path / "missing.yaml"))
    assert result.code == 2
    assert "missing.yaml: cannot read" in one_error_line(result)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("hosts: [a, b\n", "inventory.yaml:2: invalid YAML"),
        ("hosts:\n  web1: {prot: 22}\n", "inventory.yaml:2: web1: unknown key 'prot'"),
        ("hosts:\n  web1: {url: 'telnet://x'}\n", "inventory.yaml:2: web1: unknown target scheme"),
        (
            "hosts:\n  web1: {}\ngroups:\n  g: {hosts: [web2]}\n",
            "inventory.yaml:4: web2: group 'g' names unknown host",
        ),
    ],
)
def test_bad_inventory_names_file_line_and_host(auditor_cli, tmp_path, text, expected):
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    result = auditor_cli("run", "--inventory", str(path))
    assert result.code == 2
    assert expected in one_error_line(result)


def test_exit_3_when_no_target_could_be_audited(auditor_cli, closed_port, tmp_path):
    result = auditor_cli(
        "run",
        "--quiet",
        "--target",
        f"ssh://root@127.0.0.1:{closed_port}",
        "--ssh-config",
        "/dev/null",
        "--report",
        f"json:{tmp_path / 'r.json'}",
    )
    assert result.code == 3
    assert "refused" in result.err


def test_exit_0_and_exit_1_from_the_gates(auditor_cli, tmp_path):
    report = tmp_path / "r.json"
    base = ["run", "--quiet", "--target", "local://", "--report", f"json:{report}"]
    assert auditor_cli(*base).code == 0
    overall = json.loads(report.read_text())["score"]["overall"]
    assert overall["value"] is not None and overall["value"] < 100  # this box is not hardened

    failed = auditor_cli(*base, "--fail-under", "100")
    assert failed.code == 1 and "gate failed: score" in failed.err
    assert auditor_cli(*base, "--fail-under", "0").code == 0
    failed = auditor_cli(*base, "--fail-on", "low")
    assert failed.code == 1 and "failing result(s) of severity low or worse" in failed.err
    failed = auditor_cli(*base, "--min-coverage", "100")
    assert failed.code == 1 and "gate failed: coverage" in failed.err


def test_debug_shows_a_traceback_and_normal_mode_does_not(tmp_path):
    bad = tmp_path / "overlay.yaml"
    bad.write_text("extends: nist-800-190\ncolour: red\n")
    command = [sys.executable, "-m", "auditor"]
    quiet = subprocess.run(
        [*command, "run", "--overlay", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert quiet.returncode == 2 and "Traceback" not in quiet.stderr
    loud = subprocess.run(
        [*command, "--debug", "run", "--overlay", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert loud.returncode != 0 and "Traceback" in loud.stderr


def test_profiles_commands(auditor_cli, tmp_path):
    listed = auditor_cli("profiles", "list")
    assert listed.code == 0 and "nist-800-190" in listed.out
    shown = auditor_cli("profiles", "show", "nist-800-190", "--format", "json")
    assert shown.code == 0
    data = json.loads(shown.out)
    assert any(c["id"] == "4.5.4" for c in data["controls"])
    good = overlay(tmp_path, "variables: {max_package_list_age_days: 3}\n")
    assert auditor_cli("profiles", "validate", str(good)).code == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(OVERLAY_HEAD + "disable: [x.y]\n")
    result = auditor_cli("profiles", "validate", str(good), str(bad))
    assert result.code == 2
    assert "overlay.yaml: ok" in result.out and "bad.yaml:2: x.y: no such check" in result.err
