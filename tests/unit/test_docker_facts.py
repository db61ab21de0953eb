"""Docker facts from recorded API responses and host script output, and the pure functions
that shape them (subjects, dockerd flags, unit files, the daemon section).

Fixtures live in tests/fixtures/facts/docker.<fact>/<case>.json as `{"source", "raw",
"expected"}`, recorded from a real dockerd by tests/fixtures/record_docker.py; `expected` is
the fact's data as auditor stores it (redacted). New files are picked up without new code.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from docker_exports import scan_export

from auditor.collectors import docker as collector
from auditor.collectors import docker_host
from auditor.facts import new_fact
from auditor.redact import MARKER

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "facts"
FIXTURE_FILES = sorted(FIXTURES.glob("docker.*/*.json"))
PASS_THROUGH = {
    "docker.version",
    "docker.info",
    "docker.networks",
    "docker.volumes",
    "docker.plugins",
}


def _data(name: str, raw: Any) -> Any:
    """What the collector makes of a recorded raw response (before redaction)."""
    if name in PASS_THROUGH:
        return raw
    if name == "docker.containers":
        return collector.containers_fact(raw["list"], raw["inspect"])
    if name == "docker.processes":
        return collector.processes_fact(raw["list"], raw["top"], raw["max_processes"])
    if name == "docker.images":
        return collector.images_fact(raw["list"], raw["inspect"], raw["history"], raw["containers"])
    if name in ("docker.daemon_host", "docker.daemon_config"):
        parsed = docker_host.host_facts_from(
            raw["sections"], raw["roles"], raw["data_root"], raw["host"]
        )
        if name == "docker.daemon_host":
            return parsed.host
        return parsed.config if parsed.config is not None else {"error": parsed.config_error}
    if name == "docker.image_contents":
        return scan_export(base64.b64decode(raw["export_base64"]), raw["limits"])
    raise AssertionError(f"no normaliser for {name}")


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_recorded_response_gives_expected_fact(path: Path) -> None:
    fixture = json.loads(path.read_text(encoding="utf-8"))
    assert set(fixture) == {"source", "raw", "expected"}
    assert fixture["source"].strip()
    name = path.parent.name
    data = new_fact(name, "fixture", _data(name, fixture["raw"]), source="fixture").data
    assert data == fixture["expected"]
    assert json.loads(json.dumps(data)) == data


@pytest.mark.parametrize(
    ("command", "program"),
    [
        ("/usr/sbin/sshd -D", "sshd"),
        ("sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups", "sshd"),
        ("sshd: alice@pts/0", "sshd"),
        ("-bash", "bash"),
        ("[kworker/0:1]", "kworker/0:1"),
        ("/usr/sbin/in.telnetd", "in.telnetd"),
        ("dropbear -F -E -p 2222", "dropbear"),
        ("python3 /srv/sshd.py", "python3"),
        ("", ""),
    ],
)
def test_program_of_a_ps_command_line(command: str, program: str) -> None:
    assert collector.program_of(command) == program


def test_every_docker_fact_has_a_recorded_fixture() -> None:
    recorded = {p.parent.name for p in FIXTURE_FILES}
    # docker.endpoint is how auditor connected, not something the daemon answered
    assert recorded == set(collector.FACTS) - {"docker.endpoint"}


def test_recorded_secrets_are_redacted_in_the_fact() -> None:
    fixture = json.loads((FIXTURES / "docker.containers" / "scenario.json").read_text())
    planted = [
        e for c in fixture["raw"]["inspect"].values() for e in c["Config"]["Env"] or []
        if e.startswith("DB_PASSWORD=")
    ]  # fmt: skip
    assert planted
    text = json.dumps(fixture["expected"])
    assert all(value.split("=", 1)[1] not in text for value in planted)
    assert f"DB_PASSWORD={MARKER} fp=" in text


def test_a_container_removed_before_its_inspect_is_an_error_item() -> None:
    listing = [{"Id": "a" * 64, "Names": ["/web"], "Image": "nginx:1.25"}]
    (item,) = collector.containers_fact(listing, {})
    assert item["_error"] == collector.REMOVED
    subject = collector.container_subject(item)
    assert subject.name == "web (aaaaaaaaaaaa) image nginx:1.25"
    assert subject.id == "a" * 64


def test_an_inspect_failure_keeps_its_reason() -> None:
    listing = [{"Id": "b" * 64, "Names": ["/db"], "Image": "postgres:16"}]
    (item,) = collector.containers_fact(listing, {"b" * 64: "daemon answered HTTP 500: boom"})
    assert item["_error"] == "daemon answered HTTP 500: boom"


@pytest.mark.parametrize(
    ("item", "name"),
    [
        (
            {"Id": "sha256:" + "c" * 64, "RepoTags": ["app:1", "app:latest"]},
            "cccccccccccc [app:1, app:latest]",
        ),
        ({"Id": "sha256:" + "d" * 64, "RepoTags": None}, "dddddddddddd <untagged>"),
        ({"Id": "sha256:" + "e" * 64, "RepoTags": ["<none>:<none>"]}, "eeeeeeeeeeee <untagged>"),
    ],
)
def test_image_subjects_name_id_and_tags(item: dict[str, Any], name: str) -> None:
    subject = collector.image_subject(item)
    assert (subject.kind, subject.name, subject.id) == ("image", name, item["Id"])


def test_file_subjects_name_path_and_roles() -> None:
    subject = collector.file_subject(
        {"path": "/etc/docker", "roles": ["config-dir", "audit-watch"]}
    )
    assert (subject.kind, subject.name) == ("file", "/etc/docker (config-dir, audit-watch)")


def test_images_are_joined_with_the_containers_using_them() -> None:
    listing = [{"Id": "sha256:1"}, {"Id": "sha256:2"}]
    inspected = {"sha256:1": {"Id": "sha256:1"}, "sha256:2": {"Id": "sha256:2"}}
    containers = [
        {"Names": ["/b"], "ImageID": "sha256:1"},
        {"Names": ["/a"], "ImageID": "sha256:1"},
    ]
    items = collector.images_fact(
        listing, inspected, {"sha256:1": [{"CreatedBy": "x"}]}, containers
    )
    assert items[0]["UsedBy"] == ["/a", "/b"] and items[0]["History"] == [{"CreatedBy": "x"}]
    assert items[1]["UsedBy"] == [] and items[1]["History"] == []


@pytest.mark.parametrize(
    ("args", "flags"),
    [
        (["dockerd", "-H", "fd://", "--containerd=/run/containerd/containerd.sock"],
         {"hosts": ["fd://"], "containerd": "/run/containerd/containerd.sock"}),
        (["dockerd", "--icc=false", "--userland-proxy=false", "--live-restore", "--iptables=0"],
         {"icc": False, "userland-proxy": False, "live-restore": True, "iptables": False}),
        (["dockerd", "--tlsverify", "--tlscacert", "/etc/docker/ca.pem", "-H", "tcp://0.0.0.0:2376",
          "-H=unix:///var/run/docker.sock"],
         {"tlsverify": True, "tlscacert": "/etc/docker/ca.pem",
          "hosts": ["tcp://0.0.0.0:2376", "unix:///var/run/docker.sock"]}),
        (["dockerd", "--log-opt", "max-size=10m", "--log-opt=max-file=3", "-l", "debug", "-D"],
         {"log-opts": {"max-size": "10m", "max-file": "3"}, "log-level": "debug", "debug": True}),
        (["dockerd", "--insecure-registry", "10.0.0.0/8", "--authorization-plugin=authz",
          "--default-ulimit", "nofile=1024:2048", "-g", "/srv/docker"],
         {"insecure-registries": ["10.0.0.0/8"], "authorization-plugins": ["authz"],
          "default-ulimits": {"nofile": "1024:2048"}, "data-root": "/srv/docker"}),
    ],
)  # fmt: skip
def test_dockerd_flags_become_daemon_json_keys(args: list[str], flags: dict[str, Any]) -> None:
    assert docker_host.parse_dockerd_args(args) == flags


def _daemon_raw(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def test_the_daemon_section_is_read_by_tag() -> None:
    raw = _daemon_raw(
        "P:812", "O:0", "A:/usr/sbin/dockerd", "A:-H", "A:fd://",
        "R:config-file /etc/docker/daemon.json", "mP:/etc/docker/daemon.json",
        "mS:81a4 0 0 root root",
        "CF:/etc/docker/daemon.json", 'CL:{"icc": false,', 'CL: "live-restore": true}',
        "CE:/etc/docker/daemon.json",
        "UF:docker.service /lib/systemd/system/docker.service", "UL:[Service]",
        "UL:ExecStart=/usr/sbin/dockerd -H fd:// \\", "UL:  --containerd=/run/c.sock",
        "UF:docker.service /etc/systemd/system/docker.service.d/override.conf",
        "UL:ExecStart=", "UL:ExecStart=/usr/sbin/dockerd --icc=false",
        "UL:Environment=HTTPS_PROXY=http://user:pass@proxy:3128",
        "KF:/root/.docker/config.json", "KA:2",
    )  # fmt: skip
    section = docker_host.parse_daemon_section(raw)
    assert section["processes"] == [
        {"pid": 812, "uid": 0, "args": ["/usr/sbin/dockerd", "-H", "fd://"]}
    ]
    assert json.loads(section["configs"]["/etc/docker/daemon.json"]) == {
        "icc": False,
        "live-restore": True,
    }
    (config_file,) = section["files"]
    assert (config_file["mode"], config_file["roles"]) == ("0644", ["config-file"])
    assert section["client_configs"] == [
        {"path": "/root/.docker/config.json", "readable": True, "inline_credentials": 2,
         "helper": False}
    ]  # fmt: skip
    facts = docker_host.daemon_facts(section, [], {}, [], {"rules": []}, "/var/lib/docker", "local")
    assert facts.config is not None
    assert facts.config["settings"] == {"icc": False, "live-restore": True, "hosts": ["fd://"]}
    service = facts.host["units"]["docker.service"]
    # a drop-in's empty ExecStart= resets the list, as in systemd; Environment= is not kept
    assert service["ExecStart"] == [["/usr/sbin/dockerd", "--icc=false"]]
    assert "user:pass" not in json.dumps(facts.host)


def test_an_unreadable_daemon_json_is_a_reason_not_defaults() -> None:
    raw = _daemon_raw("P:9", "O:0", "A:dockerd", "CX:/etc/docker/daemon.json")
    section = docker_host.parse_daemon_section(raw)
    facts = docker_host.daemon_facts(section, [], {}, None, None, "/var/lib/docker", "local")
    assert facts.config is None
    assert (
        facts.config_error == "cannot read /etc/docker/daemon.json (audit as root, or with --sudo)"
    )


def test_invalid_daemon_json_is_a_reason() -> None:
    raw = _daemon_raw("P:9", "O:0", "A:dockerd", "CF:/etc/docker/daemon.json", "CL:{oops",
                      "CE:/etc/docker/daemon.json")  # fmt: skip
    facts = docker_host.daemon_facts(
        docker_host.parse_daemon_section(raw), [], {}, None, None, "/var/lib/docker", "local"
    )
    assert facts.config_error is not None
    assert facts.config_error.startswith("/etc/docker/daemon.json is not valid JSON (line 1")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ('{"a": ' + "9" * 5000 + "}", "a number of more than 4,300 digits"),
        ('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deep"),
    ],
)
def test_a_hostile_daemon_json_is_a_reason_not_a_crash(content: str, reason: str) -> None:
    raw = _daemon_raw("P:9", "O:0", "A:dockerd", "CF:/etc/docker/daemon.json", f"CL:{content}",
                      "CE:/etc/docker/daemon.json")  # fmt: skip
    facts = docker_host.daemon_facts(
        docker_host.parse_daemon_section(raw), [], {}, None, None, "/var/lib/docker", "local"
    )
    assert facts.config_error == f"/etc/docker/daemon.json is not valid JSON ({reason})"


def test_the_daemon_is_found_by_its_data_root_even_when_remapped() -> None:
    raw = _daemon_raw(
        "P:1", "O:0", "A:dockerd", "A:--data-root=/srv/a",
        "P:2", "O:0", "A:dockerd", "A:--data-root=/srv/b", "A:--userns-remap=default",
    )  # fmt: skip
    section = docker_host.parse_daemon_section(raw)
    facts = docker_host.daemon_facts(section, [], {}, None, None, "/srv/b/231072.231072", "local")
    assert facts.config is not None and facts.config["pid"] == 2


def test_a_bind_mount_of_the_data_root_onto_itself_is_not_a_partition() -> None:
    mounts = [
        {"source": "/dev/vda", "target": "/", "fstype": "ext4", "options": ["rw"]},
        {"source": "/dev/vda", "target": "/var/lib/docker", "fstype": "ext4", "options": ["rw"]},
        {"source": "overlay", "target": "/var/lib/docker/overlay2/x/merged", "fstype": "overlay",
         "options": ["rw"]},
    ]  # fmt: skip
    section = docker_host.parse_daemon_section("")
    facts = docker_host.daemon_facts(section, [], {}, mounts, None, "/var/lib/docker", "local")
    assert facts.host["data_root_mount"]["target"] == "/var/lib/docker"
    assert facts.host["parent_mount"]["target"] == "/"
    assert facts.host["data_root_mount"]["source"] == facts.host["parent_mount"]["source"]


def test_a_symlink_is_judged_by_its_target() -> None:
    link = {
        "path": "/etc/docker/daemon.json", "exists": True, "type": "symlink", "mode": "0777",
        "uid": 0, "gid": 0, "owner": "root", "group": "root", "link": "/srv/daemon.json",
        "resolved": {"type": "file", "mode": "0666", "uid": 1000, "gid": 1000, "owner": "dev",
                     "group": "dev"},
        "error": None,
    }  # fmt: skip
    facts = docker_host.daemon_facts(
        docker_host.parse_daemon_section(""),
        [link],
        {"/etc/docker/daemon.json": ["config-file"]},
        None,
        None,
        "/var/lib/docker",
        "local",
    )
    (entry,) = facts.host["files"]
    assert (entry["type"], entry["mode"], entry["owner"], entry["symlink"]) == (
        "file", "0666", "dev", True
    )  # fmt: skip
    assert entry["roles"] == ["config-file"]


def test_static_paths_carry_their_roles() -> None:
    paths = docker_host.static_paths("/run/user/1000/docker.sock", "/srv/docker", ["/etc/docker"])
    assert paths["/run/user/1000/docker.sock"] == ["socket"]
    assert paths["/srv/docker"] == ["data-root"]
    assert paths["/etc/docker"] == ["config-dir", "audit-watch"]


def test_the_daemon_section_only_reads() -> None:
    """No redirection into a file, no command that writes (the strace proof is in
    tests/integration/test_docker_read_only.py)."""
    script = docker_host.DAEMON_SECTION.script
    for word in (" > /", ">>", "rm ", "mkdir", "chmod", "chown", "tee ", "touch ", "mv ", "cp "):
        assert word not in script
