"""The Docker audit end to end against a real dockerd: exact results for hardened and
misconfigured containers and images, secrets in no output, and an audit that changes nothing."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
import zlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import docker
import pytest
from docker_scenario import (
    EXPECTED_FAILS,
    EXPECTED_IMAGE_FAILS,
    EXPECTED_NOT_JUDGED,
    EXPECTED_PROCESS_FAILS,
    RUNNING,
    Scenario,
    scenario_on,
)
from servers.dockerd import DockerDaemon

from auditor import engine
from auditor.collectors import collector_for
from auditor.config import TargetSpec
from auditor.model import Result, Status, TargetKind, TargetRecord
from auditor.profiles import LoadedProfile, load_profile
from auditor.targets.docker import DockerTarget

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Audit:
    scenario: Scenario
    record: TargetRecord
    results: list[Result]


@pytest.fixture(scope="module")
def profile() -> LoadedProfile:
    return load_profile()


@pytest.fixture(scope="module")
def scenario(
    dockerd_server: DockerDaemon, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scenario]:
    with scenario_on(dockerd_server.base_url, tmp_path_factory.mktemp("scenario")) as built:
        yield built


@pytest.fixture(scope="module")
def audit(dockerd_server: DockerDaemon, scenario: Scenario, profile: LoadedProfile) -> Audit:
    record = engine.collect(profile, TargetSpec(url=f"docker://{dockerd_server.base_url}"))
    assert record.error is None, record.error
    return Audit(scenario, record, engine.evaluate(profile, record, profile.variables))


def _container_checks(profile: LoadedProfile) -> set[str]:
    return {c.id for c in profile.checks if c.check.for_each == "docker.containers"}


def _by_container(audit: Audit) -> dict[str, dict[str, Result]]:
    found: dict[str, dict[str, Result]] = defaultdict(dict)
    for result in audit.results:
        if result.subject.kind != "container":
            continue
        short = audit.scenario.short(result.subject.name.split(" ")[0])
        if short is not None:
            found[short][result.check_id] = result
    return found


@pytest.mark.parametrize("short", sorted(EXPECTED_FAILS))
def test_each_container_gets_exactly_its_expected_failures(
    audit: Audit, profile: LoadedProfile, short: str
) -> None:
    checks = _container_checks(profile)
    results = {c: r for c, r in _by_container(audit)[short].items() if c in checks}
    assert set(results) == checks - EXPECTED_NOT_JUDGED[short]  # the rest are not about it
    statuses = {check: r.status for check, r in results.items()}
    failed = {check for check, status in statuses.items() if status is Status.FAIL}
    assert failed == EXPECTED_FAILS[short], {c: results[c].message for c in failed}
    passed = {check for check, status in statuses.items() if status is Status.PASS}
    assert passed == set(results) - failed  # and so no error, no skip


def test_a_check_about_no_container_is_one_skip_on_the_daemon(audit: Audit) -> None:
    """No trusted-registry list is configured: the check is about no container, and says so
    once, on the daemon, instead of once per container."""
    found = [r for r in audit.results if r.check_id == "docker.container.trusted-registry"]
    assert [(r.subject.kind, r.status) for r in found] == [("docker", Status.SKIP)]
    containers = len(next(f for f in audit.record.facts if f.name == "docker.containers").data)
    assert found[0].message == (f"not applicable to any of {containers} docker.containers subjects")


def test_a_remote_shell_daemon_in_a_running_container_is_found_through_top(
    audit: Audit,
) -> None:
    found = {
        short: result
        for result in audit.results
        if result.check_id == "docker.container.no-remote-shell-daemon"
        and (short := audit.scenario.short(result.subject.name.split(" ")[0])) is not None
    }
    assert set(found) == set(RUNNING)  # the check is about running containers only
    statuses = {short: result.status for short, result in found.items()}
    assert {s for s, status in statuses.items() if status is Status.FAIL} == EXPECTED_PROCESS_FAILS
    assert {s for s, status in statuses.items() if status is Status.PASS} == (
        set(RUNNING) - EXPECTED_PROCESS_FAILS
    )
    telnetd = found["remote-shell"]
    assert "telnetd -F -p 2323 -l /bin/sh" in telnetd.message
    processes = next(f for f in audit.record.facts if f.name == "docker.processes")
    assert "/containers/{id}/top" in processes.source


def test_states_cover_running_created_and_exited(
    dockerd_server: DockerDaemon, audit: Audit
) -> None:
    with docker.APIClient(base_url=dockerd_server.base_url, version="auto", timeout=30) as api:
        states = {
            short: api.inspect_container(cid)["State"]["Status"]
            for short, cid in audit.scenario.containers.items()
        }
    assert set(RUNNING) == {s for s, state in states.items() if state == "running"}
    assert states["hardened-exited"] == "exited"
    # this machine cannot start privileged containers: the check judges a created one
    assert states["privileged"] == "created"
    privileged = _by_container(audit)["privileged"]["docker.container.no-privileged"]
    assert privileged.status is Status.FAIL and "privileged" in privileged.message


@pytest.mark.parametrize("short", sorted(EXPECTED_IMAGE_FAILS))
def test_each_image_gets_exactly_its_expected_failures(
    audit: Audit, profile: LoadedProfile, short: str
) -> None:
    image_id = audit.scenario.images[short]
    results = {r.check_id: r for r in audit.results if r.subject.id == image_id}
    image_checks = {
        c.id
        for c in profile.checks
        if c.check.for_each in ("docker.images", "docker.image_contents")
    }
    assert set(results) == image_checks
    failed = {c for c, r in results.items() if r.status is Status.FAIL}
    assert failed == EXPECTED_IMAGE_FAILS[short], {c: results[c].message for c in failed}
    assert all(r.status in (Status.PASS, Status.FAIL, Status.SKIP) for r in results.values())


def test_results_name_the_container_with_its_image_and_the_image_with_its_tags(
    audit: Audit,
) -> None:
    scenario = audit.scenario
    loose = _by_container(audit)["loose"]["docker.container.memory-limit"]
    short_id = scenario.containers["loose"][:12]
    assert (
        loose.subject.name == f"{scenario.name('loose')} ({short_id}) image auditor-test/busybox:1"
    )
    assert loose.subject.id == scenario.containers["loose"]
    leaky_id = scenario.images["leaky"]
    image = next(r for r in audit.results if r.subject.id == leaky_id)
    assert image.subject.kind == "image"
    assert image.subject.name == f"{leaky_id.split(':')[1][:12]} [{scenario.tags['leaky']}]"


def test_image_content_findings_are_redacted_and_placed(audit: Audit) -> None:
    contents = next(f for f in audit.record.facts if f.name == "docker.image_contents")
    leaky = next(i for i in contents.data if i["Id"] == audit.scenario.images["leaky"])
    assert leaky["complete"] is True
    secrets = {(s["kind"], s["path"], s["in_final_image"]) for s in leaky["secrets"]}
    assert secrets == {
        ("private-key", "/root/.ssh/id_ed25519", False),  # deleted by a later layer: still leaked
        ("aws-access-key-id", "/app/aws.env", True),
    }
    assert [f["path"] for f in leaky["setid_files"]] == ["/opt/suid-tool"]
    assert [f["path"] for f in leaky["world_writable"]] == ["/opt/shared"]
    assert all(len(s["fingerprint"]) == 12 for s in leaky["secrets"])


def test_daemon_facts_come_from_the_daemons_own_process_and_files(
    dockerd_server: DockerDaemon, audit: Audit
) -> None:
    facts = {f.name: f for f in audit.record.facts}
    config = facts["docker.daemon_config"].data
    assert config["pid"] == dockerd_server.pid
    assert config["config_file"] == str(dockerd_server.socket_path.parent / "daemon.json")
    assert config["settings"]["iptables"] is False  # the test daemon runs --iptables=false
    host = facts["docker.daemon_host"].data
    files = {f["path"]: f for f in host["files"]}
    socket = files[str(dockerd_server.socket_path)]
    assert socket["roles"] == ["socket"] and socket["type"] == "socket"
    assert host["data_root"] == str(dockerd_server.data_root)
    results = {r.check_id: r for r in audit.results if r.subject.kind == "docker"}
    assert results["docker.daemon.iptables-managed"].status is Status.FAIL
    assert results["docker.host.data-root-partition"].status is Status.FAIL
    assert results["docker.daemon.tcp-tls"].status is Status.PASS
    errors = [r for r in audit.results if r.status is Status.ERROR]
    assert not errors, [(r.check_id, r.subject.name, r.message) for r in errors]


def _stored(path: Path) -> bytes:
    """Everything in the SQLite store, its zlib-compressed blobs inflated."""
    chunks: list[bytes] = []
    with sqlite3.connect(path) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in db.execute(f'SELECT * FROM "{table}"'):
                for value in row:
                    if isinstance(value, bytes):
                        with contextlib.suppress(zlib.error):
                            value = zlib.decompress(value)
                        chunks.append(value)
                    else:
                        chunks.append(str(value).encode())
    return b"\n".join(chunks)


def test_planted_secret_appears_in_no_output(
    dockerd_server: DockerDaemon, scenario: Scenario, auditor_cli, tmp_path: Path
) -> None:
    report = tmp_path / "results.json"
    html = tmp_path / "report.html"
    store = tmp_path / "store.db"
    result = auditor_cli(
        "run",
        "--target", f"docker://{dockerd_server.base_url}",
        "--report", f"json:{report}",
        "--report", f"html:{html}",
        "--db", str(store),
    )  # fmt: skip
    assert result.code in (0, 1), result.err
    outputs = {
        "stdout": result.out.encode(),
        "stderr": result.err.encode(),
        "json": report.read_bytes(),
        "html": html.read_bytes(),
        "store": _stored(store),
    }
    for planted in (scenario.secret, scenario.aws_key_id):
        leaks = [where for where, data in outputs.items() if planted.encode() in data]
        assert not leaks, f"{planted} found in {leaks}"
    document = json.loads(report.read_text())
    failing = [r for r in document["results"] if r["check_id"] == "docker.container.no-secrets"]
    assert any("DB_PASSWORD=[REDACTED fp=" in r["message"] for r in failing)
    # the store does hold the evidence: the finding is there, by name and fingerprint
    assert b"[REDACTED fp=" in outputs["store"]


def test_a_label_holding_a_script_stays_data(
    dockerd_server: DockerDaemon, scenario: Scenario, auditor_cli, tmp_path: Path
) -> None:
    report, html = tmp_path / "results.json", tmp_path / "report.html"
    result = auditor_cli(
        "run",
        "--target", f"docker://{dockerd_server.base_url}",
        "--report", f"json:{report}",
        "--report", f"html:{html}",
        "--no-store",
    )  # fmt: skip
    assert result.code in (0, 1), result.err
    document = json.loads(report.read_text())
    loose = scenario.containers["loose"]
    labels = [
        item["Config"]["Labels"]
        for data in document["evidence"].values()
        if isinstance(data, list)
        for item in data
        if isinstance(item, dict) and item.get("Id") == loose and "Config" in item
    ]
    assert labels and labels[0]["org.example.note"] == "<script>alert('label')</script>"
    assert "<script>alert(" not in html.read_text()
    assert "<script>alert(" not in result.out


def _snapshot(api: docker.APIClient, scenario: Scenario) -> dict[str, object]:
    containers = sorted(
        (c["Id"], tuple(c["Names"]), c["Image"], c["ImageID"], c["State"], c["Created"])
        for c in api.containers(all=True)
    )
    images = sorted((i["Id"], tuple(i.get("RepoTags") or ())) for i in api.images(all=True))
    diffs = {short: api.diff(cid) for short, cid in scenario.containers.items()}
    return {"containers": containers, "images": images, "diffs": diffs}


def test_the_audit_changes_nothing(
    dockerd_server: DockerDaemon, scenario: Scenario, profile: LoadedProfile
) -> None:
    with docker.APIClient(base_url=dockerd_server.base_url, version="auto", timeout=30) as api:
        before = _snapshot(api, scenario)
        started = time.time_ns()
        record = engine.collect(profile, TargetSpec(url=f"docker://{dockerd_server.base_url}"))
        finished = time.time_ns()
        after = _snapshot(api, scenario)
        logged = api.events(since=started // 10**9 - 1, until=finished // 10**9 + 1, decode=True)
        events = [e for e in logged if started <= e["timeNano"] <= finished]
    assert record.error is None
    assert before == after
    # the image export (docker save) and the process lists (top) are the only things the
    # daemon logs; nothing is created, started, changed or removed
    assert events and {(e["Type"], e["Action"]) for e in events} == {
        ("image", "save"),
        ("container", "top"),
    }


def test_a_container_removed_mid_audit_is_an_error_for_it_only(
    dockerd_server: DockerDaemon, scenario: Scenario, profile: LoadedProfile
) -> None:
    with docker.APIClient(base_url=dockerd_server.base_url, version="auto", timeout=30) as api:
        doomed = api.create_container(
            "auditor-test/busybox:1", ["true"], name=f"{scenario.prefix}-doomed"
        )["Id"]
        target = DockerTarget(TargetSpec(url=f"docker://{dockerd_server.base_url}"))
        with target:
            listing = target.api.containers

            def list_then_remove(**kwargs: object) -> object:
                found = listing(**kwargs)
                api.remove_container(doomed, force=True)  # gone before the inspect calls
                return found

            target.api.containers = list_then_remove
            facts = collector_for(TargetKind.DOCKER).collect(
                target,
                {"docker.containers", "docker.info", "docker.networks", "docker.endpoint"},
                profile.variables,
            )
    facts_tuple = tuple(facts[name] for name in sorted(facts))
    record = TargetRecord("gone", "docker://", TargetKind.DOCKER, "", "", facts=facts_tuple)
    only = [c for c in profile.checks if c.check.for_each == "docker.containers"]
    results = engine.evaluate(replace(profile, checks=tuple(only)), record, profile.variables)
    doomed_results = [r for r in results if r.subject.id == doomed]
    assert doomed_results and all(r.status is Status.ERROR for r in doomed_results)
    assert all("removed between the list and the inspect" in r.message for r in doomed_results)
    assert f"{scenario.prefix}-doomed ({doomed[:12]})" in doomed_results[0].subject.name
    others = [r for r in results if r.subject.id != doomed]
    assert others and all(r.status is not Status.ERROR for r in others)


def test_process_reads_are_capped_and_what_is_past_the_cap_is_an_error(
    dockerd_server: DockerDaemon, scenario: Scenario, profile: LoadedProfile
) -> None:
    variables = {**profile.variables, "docker_top_max_containers": 1}
    target = DockerTarget(TargetSpec(url=f"docker://{dockerd_server.base_url}"))
    with target:
        calls: list[str] = []
        top = target.api.top

        def counted(container: str, *args: object, **kwargs: object) -> object:
            calls.append(container)
            return top(container, *args, **kwargs)

        target.api.top = counted
        fact = collector_for(TargetKind.DOCKER).collect(target, {"docker.processes"}, variables)[
            "docker.processes"
        ]
    running = [item for item in fact.data if item["running"]]
    assert len(running) >= len(RUNNING) > 1 and len(calls) == 1
    read = [item for item in running if "_error" not in item]
    assert [item["Id"] for item in read] == calls
    past = [item["_error"] for item in running if "_error" in item]
    assert len(past) == len(running) - 1
    assert set(past) == {"not read: more than docker_top_max_containers (1) running containers"}
