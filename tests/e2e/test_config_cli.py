"""The config file, AUDITOR_* variables and shell completion: precedence flags > environment >
config file > defaults, bad files refused with file, line and key, completion through bash."""

from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "k8s" / "manifests" / "checkov" / "example_PrivilegedContainers"
RUN = f"""\
run:
  target: k8s-snapshot://{DATA}
  no-store: true
  quiet: true
  report: [json:results.json]
"""


def gate(err: str) -> str:
    """The severity the --fail-on gate was judged at, from its message."""
    line = next(line for line in err.splitlines() if "gate failed" in line)
    return line.split("of severity ")[1].split()[0]


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("AUDITOR_") and name != "AUDITOR_FINGERPRINT_KEY":
            monkeypatch.delenv(name)
    return tmp_path


def test_flags_beat_environment_beat_config_beat_defaults(auditor_cli, project, monkeypatch):
    (project / "auditor.yaml").write_text(RUN + "  fail-on: high\n")
    from_file = auditor_cli("run")
    assert from_file.code == 1 and gate(from_file.err) == "high"
    assert (project / "results.json").is_file()  # the file's report list was used
    monkeypatch.setenv("AUDITOR_FAIL_ON", "critical")
    from_env = auditor_cli("run")
    assert from_env.code == 1 and gate(from_env.err) == "critical"
    from_flag = auditor_cli("run", "--fail-on", "low")
    assert from_flag.code == 1 and gate(from_flag.err) == "low"
    monkeypatch.delenv("AUDITOR_FAIL_ON")
    (project / "auditor.yaml").write_text(RUN)  # no gate anywhere: the default, none
    assert auditor_cli("run").code == 0


def test_the_project_file_overrides_the_user_file_and_config_replaces_both(
    auditor_cli, project, monkeypatch
):
    xdg = project / "xdg"
    (xdg / "auditor").mkdir(parents=True)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    (xdg / "auditor" / "config.yaml").write_text(RUN + "  fail_on: medium\n")
    assert gate(auditor_cli("run").err) == "medium"  # parameter names work as keys too
    (project / "auditor.yaml").write_text("run:\n  fail-on: critical\n")
    assert gate(auditor_cli("run").err) == "critical"  # the rest still from the user file
    (project / "other.yaml").write_text(RUN + "  fail-on: low\n")
    assert gate(auditor_cli("--config", "other.yaml", "run").err) == "low"
    monkeypatch.setenv("AUDITOR_CONFIG", "other.yaml")
    assert gate(auditor_cli("run").err) == "low"
    monkeypatch.delenv("AUDITOR_CONFIG")
    after_the_command = auditor_cli("run", "--config", "other.yaml")  # also after `run`
    assert gate(after_the_command.err) == "low"
    assert gate(auditor_cli("run", "--config", "other.yaml", "--fail-on", "high").err) == "high"


def test_config_after_a_nested_command(auditor_cli, project):
    (project / "auditor.yaml").write_text("runs:\n  list:\n    limit: 0\n")  # refused: >= 1
    assert auditor_cli("runs", "list", "--db", str(project / "r.db")).code == 2
    (project / "mine.yaml").write_text("runs:\n  list:\n    format: json\n")
    listed = auditor_cli("runs", "list", "--config", "mine.yaml", "--db", str(project / "r.db"))
    assert listed.code == 0, listed.err
    assert listed.out.strip() == "[]"  # the file's --format json, no runs yet


def test_a_multiple_option_takes_a_list_or_one_value(auditor_cli, project):
    (project / "auditor.yaml").write_text(
        RUN.replace("[json:results.json]", "json:one.json")
        + "  var: ['max_package_list_age_days=3']\n"
    )
    assert auditor_cli("run").code == 0
    assert (project / "one.json").is_file()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (RUN + "  fail-onn: high\n", "auditor.yaml:6: run.fail-onn: unknown option of"),
        (RUN + "  fail-on: extreme\n", "auditor.yaml:6: run.fail-on: bad value: 'extreme' is not"),
        (RUN + "  concurrency: lots\n", "auditor.yaml:6: run.concurrency: bad value:"),
        ("runs:\n  list: {}\nrunn:\n  quiet: true\n", "auditor.yaml:3: runn: unknown section"),
        ("runs:\n  list:\n    limitt: 3\n", "auditor.yaml:3: runs.list.limitt: unknown option"),
        ("- run\n", "auditor.yaml:1: expected a mapping of commands"),
        ("run: [\n", "auditor.yaml:2: invalid YAML"),
        ("run: 3\n", "auditor.yaml:1: expected a mapping of options"),
    ],
)
def test_a_bad_config_file_is_one_line_naming_file_line_and_key(project, text, expected):
    (project / "auditor.yaml").write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "auditor", "run"], capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"auditor: error: {expected}"), done.stderr
    assert "Traceback" not in done.stderr


def test_help_names_the_variable_of_every_run_option(auditor_cli):
    from auditor.cli.run import run

    shown = " ".join(auditor_cli("run", "--help").out.split())
    for param in run.params:
        if isinstance(param, click.Option) and param.expose_value:  # not --config, --help
            envvar = param.envvar or f"AUDITOR_{param.name.upper()}"
            assert re.search(rf"env var: {envvar}[];]", shown), param.name


def test_every_run_option_is_read_from_its_variable(project, auditor_cli, monkeypatch):
    monkeypatch.setenv("AUDITOR_TARGETS", f"k8s-snapshot://{DATA}")
    monkeypatch.setenv("AUDITOR_REPORTS", "json:env.json markdown:env.md")
    monkeypatch.setenv("AUDITOR_NO_STORE", "1")
    monkeypatch.setenv("AUDITOR_QUIET", "true")
    monkeypatch.setenv("AUDITOR_MIN_COVERAGE", "99")
    done = auditor_cli("run")
    assert done.code == 1 and "coverage" in done.err
    assert (project / "env.json").is_file() and (project / "env.md").is_file()


@cache
def _shim_directory() -> Path:
    """A directory whose `auditor` is this checkout's; it goes when the test process ends."""
    shim = Path(tempfile.mkdtemp(prefix="auditor-shim-"))
    atexit.register(shutil.rmtree, shim, ignore_errors=True)
    (shim / "auditor").write_text(f'#!/bin/sh\nexec {sys.executable} -m auditor "$@"\n')
    (shim / "auditor").chmod(0o755)
    return shim


def _shim() -> dict[str, str]:
    """An environment whose `auditor` (which the completion scripts call back) is this
    checkout's."""
    path = f"{_shim_directory()}:{os.environ['PATH']}"
    return {**os.environ, "PATH": path, "PYTHONPATH": str(ROOT)}


def _shell(argv: list[str]) -> list[str]:
    done = subprocess.run(argv, capture_output=True, text=True, env=_shim(), timeout=120)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return done.stdout.splitlines()


def _bash_complete(words: str) -> list[str]:
    """What real bash offers after `words`, through `auditor completion bash`."""
    script = (
        'eval "$(auditor completion bash)"\n'
        f"COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))\n"
        "_auditor_completion auditor\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    return _shell(["bash", "-c", script])


def test_bash_completes_commands_and_options():
    assert {"run", "report", "diff", "completion"} <= set(_bash_complete("auditor ''"))
    assert set(_bash_complete("auditor run --fail-")) == {"--fail-under", "--fail-on"}
    assert set(_bash_complete("auditor run --fail-on ''")) >= {"critical", "high", "low"}


def test_fish_completes_with_descriptions():
    """fish's own `complete -C` runs the script as a user's prompt would."""
    script = 'auditor completion fish | source; complete -C "auditor run --fail-"'
    offered = dict(line.split("\t", 1) for line in _shell(["fish", "-c", script]))
    assert set(offered) == {"--fail-under", "--fail-on"}
    assert offered["--fail-on"].startswith("Exit 1 when anything of this severity")


def test_zsh_script_completes_through_its_completion_function():
    """zsh runs the script; outside a completion widget, `compadd` and `_describe` (zsh's
    completion builtins) are stand-ins that print what they are given."""
    script = (
        "compdef() { :; }\n"
        '_describe() { local name=$3; print -l -- "${(@P)name}"; }\n'
        'compadd() { local name=${@[-1]}; print -l -- "${(@P)name}"; }\n'
        'eval "$(auditor completion zsh)"\n'
        "words=(auditor run --fail-); CURRENT=3\n"
        "_auditor_completion\n"
    )
    offered = [line.split(":", 1)[0] for line in _shell(["zsh", "-c", script])]
    assert set(offered) == {"--fail-under", "--fail-on"}


def test_cli_group_reads_no_file_during_completion(project):
    (project / "auditor.yaml").write_text("runn: 1\n")  # would be an error in a real run
    env = {**os.environ, "_AUDITOR_COMPLETE": "bash_complete", "COMP_WORDS": "auditor ru",
           "COMP_CWORD": "1", "PYTHONPATH": str(ROOT)}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "auditor"], capture_output=True, text=True, env=env, timeout=120
    )
    assert "plain,run" in done.stdout.replace("\n", ","), done.stderr
