"""Secrets planted in real targets reach no sink: not the JSON report, the SQLite store, an
evidence bundle or the debug log.

Each credential form that leaked (issue 16) is planted in a container's environment and
arguments on the test dockerd, in the arguments of a real process audited with local://, and in
a Kubernetes manifest's env and args; then the outputs are searched for every planted value,
and for the redaction marker with its context kept, so the search is not vacuous.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
import tarfile
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import yaml
from servers.dockerd import DockerDaemon, busybox_image

pytestmark = pytest.mark.integration

# A random-looking 40-character AWS secret access key under an innocuous name.
AWS_SECRET = "PlAntedAws6K7MDENG/bPxRfiCYEXAMPLEKEYz+Q"
assert len(AWS_SECRET) == 40


def planted(tag: str) -> dict[str, str]:
    """The secret of each form, made unique to one target kind by `tag`."""
    return {
        "url": f"Planted{tag}Url1",
        "https": f"Planted{tag}Url2",
        "arg": f"Planted{tag}Arg3",
        "mysql": f"Planted{tag}My4",
        "pg": f"Planted{tag}Pg5",
        "gitlab": f"glpat-Planted{tag}Gl6abcdefghij",
        "jwt": f"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.Planted{tag}Jwt7sig",
        "json": f"Planted{tag}Json8",
    }


def environment(secrets: dict[str, str]) -> list[str]:
    return [
        f"DATABASE_URL=postgres://admin:{secrets['url']}@db:5432/app",
        f"GIT_REMOTE=https://u:{secrets['https']}@git.example.org/x.git",
        f"PGPASSWORD={secrets['pg']}",
        f"DEPLOY={secrets['gitlab']}",
        f"SESSION={secrets['jwt']}",
        f"BLOB={AWS_SECRET}",
    ]


def arguments(secrets: dict[str, str]) -> list[str]:
    return [
        "-uroot",
        f"-p{secrets['mysql']}",
        "--password",
        secrets["arg"],
        f'--config={{"user": "app", "password": "{secrets["json"]}"}}',
    ]


def every_secret(secrets: dict[str, str]) -> list[str]:
    return [*secrets.values(), AWS_SECRET, "PlAntedAws6"]


def stored_text(database: Path) -> str:
    """Every value of every table of a SQLite store, blobs decompressed."""
    parts: list[str] = []
    with sqlite3.connect(database) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                for value in row:
                    if isinstance(value, bytes):
                        with contextlib.suppress(zlib.error):  # not every blob is ours
                            value = zlib.decompress(value)
                        parts.append(value.decode("utf-8", "replace"))
                    elif value is not None:
                        parts.append(str(value))
    return "\n".join(parts)


def bundle_text(path: Path) -> str:
    with tarfile.open(path) as tar:
        return "\n".join(
            tar.extractfile(m).read().decode("utf-8", "replace") for m in tar.getmembers()
        )


def audit_everywhere(tmp_path: Path, target: str, *extra: str) -> dict[str, str]:
    """`auditor run` with a store, a JSON report and --debug, and `auditor collect`: the text of
    every sink."""
    db, report, bundle = tmp_path / "store.db", tmp_path / "report.json", tmp_path / "b.tar.gz"
    run = subprocess.run(
        [sys.executable, "-m", "auditor", "--debug", "run", "-q", "-t", target, "--db", str(db),
         "-r", f"json:{report}", *extra],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert run.returncode in (0, 1), run.stderr[-3000:]
    collect = subprocess.run(
        [sys.executable, "-m", "auditor", "collect", "-q", "-t", target, "-o", str(bundle), *extra],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert collect.returncode == 0, collect.stderr[-3000:]
    return {
        "report": report.read_text(),
        "store": stored_text(db),
        "bundle": bundle_text(bundle),
        "log": run.stderr + collect.stderr,
    }


def assert_redacted(sinks: dict[str, str], secrets: dict[str, str], kept: list[str]) -> None:
    leaks = [
        f"{secret} in the {sink}: ...{text[max(0, text.find(secret) - 200) :][:250]}"
        for sink, text in sinks.items()
        for secret in every_secret(secrets)
        if secret in text
    ]
    assert leaks == []
    # the redaction happened where each value was, its context kept (the search is not vacuous)
    missing = [
        f"{context!r} not in the {sink}"
        for sink, text in sinks.items()
        if sink != "log"
        for context in kept
        if context not in text
    ]
    assert missing == []


@pytest.fixture
def planted_container(dockerd_server: DockerDaemon) -> Iterator[dict[str, str]]:
    """A created (not started) container whose environment and arguments hold every form."""
    secrets = planted("Docker")
    client = docker.DockerClient(base_url=dockerd_server.base_url, timeout=60)
    image = busybox_image(client)
    container = client.containers.create(
        image,
        entrypoint=["mysql"],
        command=arguments(secrets),
        environment=environment(secrets),
        name=f"planted-{uuid.uuid4().hex[:8]}",
    )
    try:
        yield secrets
    finally:
        container.remove(force=True)
        client.close()


def test_docker_inspect_data(planted_container, dockerd_server, tmp_path):
    sinks = audit_everywhere(tmp_path, f"docker://{dockerd_server.base_url}")
    assert_redacted(
        sinks,
        planted_container,
        ["postgres://admin:[REDACTED fp=", "https://u:[REDACTED fp=", "PGPASSWORD=[REDACTED fp=",
         "BLOB=[REDACTED fp=", "-p[REDACTED fp="],
    )  # fmt: skip


OVERLAY = {
    "extends": "nist-800-190",
    "controls": [
        {
            "id": "org.1",
            "title": "Credentials stay off command lines",
            "text": "No process carries a credential in its arguments.",
            "coverage": "automated",
            "checks": [
                {
                    "id": "org.host.no-secret-in-process-arguments",
                    "title": "No process carries a credential on its command line",
                    "severity": "high",
                    "target": "host",
                    "for_each": "host.processes",
                    "assert": "subject.args == null || !subject.args.contains('[REDACTED')",
                    "message": "{{ subject.args }} carries a credential on its command line",
                    "remediation": "Pass credentials in a file, not as arguments.",
                }
            ],
        }
    ],
}


@pytest.fixture
def planted_process() -> Iterator[dict[str, str]]:
    """A real process, named mysql, whose command line holds every form."""
    secrets = planted("Host")
    words = arguments(secrets) + [line.split("=", 1)[1] for line in environment(secrets)[:2]]
    words += [f"PGPASSWORD={secrets['pg']}", secrets["gitlab"], secrets["jwt"], AWS_SECRET]
    process = subprocess.Popen(
        ["bash", "-c", 'exec -a mysql "$0" -c "import time; time.sleep(300)" "$@"',
         sys.executable, *words],
    )  # fmt: skip
    cmdline = Path(f"/proc/{process.pid}/cmdline")
    deadline = time.monotonic() + 30
    while not cmdline.read_bytes().startswith(b"mysql\0"):  # bash has exec'd it
        assert process.poll() is None and time.monotonic() < deadline, "mysql did not start"
        time.sleep(0.02)
    try:
        yield secrets
    finally:
        process.kill()
        process.wait(timeout=10)


def test_host_process_arguments(planted_process, tmp_path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(yaml.safe_dump(OVERLAY))
    sinks = audit_everywhere(tmp_path, "local://", "--overlay", str(overlay))
    assert_redacted(
        sinks, planted_process, ["mysql -c import time", "-p[REDACTED fp=", "--password [REDACTED"]
    )
    findings = [
        r for r in json.loads(sinks["report"])["results"]
        if r["check_id"] == "org.host.no-secret-in-process-arguments" and r["status"] == "fail"
    ]  # fmt: skip
    assert any("mysql -c import time" in r["message"] for r in findings)


def test_kubernetes_env_and_args_in_a_manifest(tmp_path):
    secrets = planted("K8s")
    env = [{"name": k, "value": v} for k, v in (e.split("=", 1) for e in environment(secrets))]
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"template": {"spec": {"containers": [{
            "name": "db-client", "image": "registry.example.org/mysql:8",
            "command": ["mysql"], "args": arguments(secrets), "env": env,
        }]}}},
    }  # fmt: skip
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "web.yaml").write_text(yaml.safe_dump(manifest))
    sinks = audit_everywhere(tmp_path, f"k8s-snapshot://{manifests}")
    # pod templates keep the names of env vars holding a credential, never their values
    assert_redacted(sinks, secrets, ['"env_hardcoded_secrets":{"db-client":["DATABASE_URL"'])
    evidence = json.loads(sinks["report"])["evidence"].values()
    (template,) = [e for e in evidence if isinstance(e, list) and "db-client" in json.dumps(e)]
    flagged = template[0]["env_hardcoded_secrets"]["db-client"]
    assert sorted(flagged) == sorted(entry["name"] for entry in env)  # each form is seen
