"""The scheduling recipes under deploy/: valid for their tool, and valid `auditor run`s."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import click
import pytest
import yaml
from croniter import croniter

from auditor.cli.run import run

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def assert_valid_run(args: list[str]) -> None:
    """The arguments parse as `auditor run` options (what would fail at 2 a.m. fails now)."""
    assert args[0] == "run", args
    context = run.make_context("auditor run", list(args[1:]))
    assert isinstance(context, click.Context)


def test_cron_entry_is_valid_and_never_overlaps():
    lines = [
        line
        for line in (DEPLOY / "cron" / "auditor.cron").read_text().splitlines()
        if line.strip() and not line.startswith("#") and "=" not in line.split()[0]
    ]
    (entry,) = lines
    fields = entry.split(None, 6)
    assert croniter.is_valid(" ".join(fields[:5]))
    assert fields[5] == "root"
    command = shlex.split(fields[6])
    assert "%" not in fields[6]  # cron would turn it into a newline
    assert command[:3] == ["flock", "-n", "/var/lib/auditor/cron.lock"]
    assert command[3] == "auditor"
    assert_valid_run(command[4:])


def test_systemd_units_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze (Debian package systemd) is needed to check the units"
    auditor = shutil.which("auditor")
    assert auditor, "the auditor command must be installed (pip install -e .)"
    service = (DEPLOY / "systemd" / "auditor.service").read_text()
    exec_start = next(line for line in service.splitlines() if line.startswith("ExecStart="))
    command = shlex.split(exec_start.removeprefix("ExecStart="))
    assert command[0] == "/usr/local/bin/auditor"
    assert_valid_run(command[1:])
    # verify checks that ExecStart exists: point it at this machine's auditor
    (tmp_path / "auditor.service").write_text(service.replace("/usr/local/bin/auditor", auditor))
    shutil.copy(DEPLOY / "systemd" / "auditor.timer", tmp_path / "auditor.timer")
    result = subprocess.run(
        [analyze, "verify", str(tmp_path / "auditor.service"), str(tmp_path / "auditor.timer")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""  # unknown keys are only warnings: none allowed
    assert "OnCalendar=*-*-* 02:00:00" in (tmp_path / "auditor.timer").read_text()


def test_kubernetes_cronjob_uses_the_read_only_service_account():
    documents = list(
        yaml.safe_load_all((DEPLOY / "kubernetes" / "auditor-cronjob.yaml").read_text())
    )
    kinds = {doc["kind"]: doc for doc in documents}
    assert set(kinds) == {"CronJob", "PersistentVolumeClaim"}  # RBAC lives in auditor-rbac.yaml
    cronjob = kinds["CronJob"]
    assert cronjob["apiVersion"] == "batch/v1"
    assert cronjob["metadata"]["namespace"] == "auditor"
    assert croniter.is_valid(cronjob["spec"]["schedule"])
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "auditor"
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert_valid_run(container["args"])
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["XDG_DATA_HOME"] in mounts  # the SQLite store lives on the volume
    rbac = DEPLOY / "kubernetes" / "auditor-rbac.yaml"
    if rbac.exists():  # shipped with the Kubernetes collector: the account must be there
        accounts = [
            doc
            for doc in yaml.safe_load_all(rbac.read_text())
            if doc and doc.get("kind") == "ServiceAccount"
        ]
        assert any(
            a["metadata"]["name"] == "auditor" and a["metadata"]["namespace"] == "auditor"
            for a in accounts
        )


@pytest.mark.parametrize("expression", ["0 2 * * *", "*/15 * * * *", "* * * * * */5"])
def test_schedule_accepts_cron_expressions(expression):
    from auditor.schedule import parse_cron

    assert parse_cron(expression) == expression


@pytest.mark.parametrize("expression", ["0 2 * *", "61 * * * *", "nightly"])
def test_schedule_refuses_bad_cron_expressions(expression, auditor_cli):
    result = auditor_cli("schedule", "--cron", expression, "--max-runs", "1")
    assert result.code == 2
    assert f"bad cron expression {expression!r}" in result.err
    assert "Traceback" not in result.err


def test_schedule_refuses_bad_run_options_at_once(auditor_cli):
    result = auditor_cli("schedule", "--cron", "0 2 * * *", "--no-such-option")
    assert result.code == 2
    assert "--no-such-option" in result.err


def assert_valid_worker(args: list[str]) -> click.Context:
    """The arguments parse as `auditor worker` options."""
    from auditor.cli.worker import worker

    assert args[0] == "worker", args
    context = worker.make_context("auditor worker", list(args[1:]))
    assert isinstance(context, click.Context)
    return context


def test_the_worker_unit_verifies_and_serves_its_instance_zone(tmp_path):
    analyze = shutil.which("systemd-analyze")
    auditor = shutil.which("auditor")
    assert analyze and auditor, "systemd-analyze and an installed auditor are needed"
    unit = (DEPLOY / "systemd" / "auditor-worker@.service").read_text()
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    command = shlex.split(exec_start.removeprefix("ExecStart=").replace("%i", "dc1"))
    assert command[0] == "/usr/local/bin/auditor"
    context = assert_valid_worker([*command[1:], "--broker", "redis://localhost"])
    assert context.params["queues"] == "dc1"
    (tmp_path / "auditor-worker@.service").write_text(
        unit.replace("/usr/local/bin/auditor", auditor)
        .replace("EnvironmentFile=/etc", "EnvironmentFile=-/etc")  # not on this machine
        .replace("User=auditor\nGroup=auditor\n", "")  # no such account on this machine
    )
    result = subprocess.run(
        [analyze, "verify", str(tmp_path / "auditor-worker@dc1.service")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


def test_the_worker_deployment_brings_its_own_credentials_and_passes_our_own_checks(tmp_path):
    from auditor import engine
    from auditor.config import TargetSpec
    from auditor.views import load_named

    path = DEPLOY / "kubernetes" / "auditor-worker.yaml"
    (deployment,) = yaml.safe_load_all(path.read_text())
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["AUDITOR_BROKER"]["valueFrom"]["secretKeyRef"]["name"] == "auditor-broker"
    context = assert_valid_worker([*container["args"], "--broker", "redis://x"])
    assert context.params["queues"] == "dc1" and context.params["allow"]
    secret_volumes = {v["name"] for v in pod["volumes"] if "secret" in v}
    assert {m["name"] for m in container["volumeMounts"]} & secret_volumes == {"ssh"}
    # auditor's own Kubernetes checks judge auditor's own manifest, with the Namespace it
    # deploys into (auditor-rbac.yaml): without it the namespace is implied and has no label
    snapshot = tmp_path / "deploy"
    snapshot.mkdir()
    for manifest in (path, DEPLOY / "kubernetes" / "auditor-rbac.yaml"):
        (snapshot / manifest.name).write_text(manifest.read_text())
    profile = load_named("pss-restricted")
    record = engine.collect(profile, TargetSpec(url=f"k8s-snapshot://{snapshot}"))
    results = engine.evaluate(profile, record, profile.variables)
    assert record.error is None and results
    failing = {r.check_id for r in results if r.status == "fail"}
    assert failing == set(), failing
