"""A Docker scenario for the integration tests: hardened and deliberately misconfigured
containers and images on a real dockerd, with the exact results the audit must give.

Everything is built offline from the busybox test image; containers whose configuration
this machine cannot start (privileged, SYS_ADMIN, published ports that would listen on
0.0.0.0) are created and never started: the checks judge configuration, and Docker keeps it
for created containers exactly as for running ones.
"""

from __future__ import annotations

import functools
import http.server
import io
import secrets
import string
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import docker
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

BUSYBOX = "auditor-test/busybox:1"

# Every container check of the profile; a container's results are pass or skip for all of
# them except the ones in its expected set, which fail.
HARDENED_FAILS: frozenset[str] = frozenset()
EXPECTED_FAILS: dict[str, frozenset[str]] = {
    "hardened": HARDENED_FAILS,
    "hardened-created": HARDENED_FAILS,
    "hardened-exited": HARDENED_FAILS,
    "privileged": frozenset({"docker.container.no-privileged"}),
    "capabilities": frozenset(
        {"docker.container.no-dangerous-capabilities", "docker.container.drop-all-capabilities"}
    ),
    "host-namespaces": frozenset(
        {
            "docker.container.no-host-pid",
            "docker.container.no-host-ipc",
            "docker.container.no-host-uts",
            "docker.container.no-host-network",
        }
    ),
    "mounts": frozenset(
        {
            "docker.container.no-sensitive-mounts",
            "docker.container.no-writable-sensitive-mounts",
            "docker.container.no-runtime-socket",
            "docker.container.no-shared-propagation",
            "docker.container.no-host-devices",
        }
    ),
    "loose": frozenset(
        {
            "docker.container.drop-all-capabilities",
            "docker.container.non-root-user",
            "docker.container.no-new-privileges",
            "docker.container.seccomp",
            "docker.container.memory-limit",
            "docker.container.cpu-limit",
            "docker.container.pids-limit",
            "docker.container.no-privileged-ports",
            "docker.container.ports-on-specific-interface",
            "docker.container.restart-policy",
            "docker.container.healthcheck",
            "docker.container.no-ulimit-override",
            "docker.container.read-only-rootfs",
            "docker.container.no-secrets",
        }
    ),
    # asks for no AppArmor and no SELinux label: a finding although the test kernel has neither
    "unconfined": frozenset({"docker.container.mac-profile"}),
    # hardened, but runs busybox telnetd (docker.container.no-remote-shell-daemon, judged on
    # docker.processes: EXPECTED_PROCESS_FAILS)
    "remote-shell": HARDENED_FAILS,
    "leaky": frozenset(
        {
            "docker.container.non-root-user",
            "docker.container.healthcheck",
            "docker.container.no-secrets",
            "docker.container.image-pinned",
        }
    ),
}
RUNNING = ("hardened", "host-namespaces", "remote-shell")
# Not applicable on the test daemon, so not judged on the container (no result): neither
# AppArmor nor SELinux (unless a container asks to go without them), no trusted-registry list
# configured; and drop-all means nothing for a privileged container.
NOT_APPLICABLE = frozenset({"docker.container.mac-profile", "docker.container.trusted-registry"})
EXPECTED_NOT_JUDGED: dict[str, frozenset[str]] = {
    short: NOT_APPLICABLE - EXPECTED_FAILS[short]
    | ({"docker.container.drop-all-capabilities"} if short == "privileged" else set())
    for short in EXPECTED_FAILS
}
# docker.container.no-remote-shell-daemon reads the processes of running containers (GET
# /containers/{id}/top): it fails the telnetd container, passes the other running ones and
# judges none of the rest.
EXPECTED_PROCESS_FAILS = frozenset({"remote-shell"})

# Images: the hardened one fails nothing but in-use is judged by the containers above.
EXPECTED_IMAGE_FAILS: dict[str, frozenset[str]] = {
    "hardened": frozenset(),
    "leaky": frozenset(
        {
            "docker.image.non-root-user",
            "docker.image.healthcheck",
            "docker.image.no-remote-add",
            "docker.image.no-pipe-to-shell",
            "docker.image.no-secrets-in-config",
            "docker.image.no-embedded-secrets",
            "docker.image.no-setid-files",
            "docker.image.no-world-writable-files",
            "docker.image.no-latest-tag",
        }
    ),
}


@dataclass
class Scenario:
    """The containers and images made for one test module, by short name."""

    prefix: str
    secret: str  # planted in env, labels, image env and history: must appear in no output
    aws_key_id: str  # planted in an image file
    containers: dict[str, str] = field(default_factory=dict)  # short name -> id
    images: dict[str, str] = field(default_factory=dict)  # short name -> image id
    tags: dict[str, str] = field(default_factory=dict)  # short name -> tag

    def name(self, short: str) -> str:
        return f"{self.prefix}-{short}"

    def short(self, container_name: str) -> str | None:
        """The short name of a scenario container from its Docker name, or None."""
        bare = container_name.lstrip("/")
        start = f"{self.prefix}-"
        return bare[len(start) :] if bare.startswith(start) else None


def _random_upper(length: int) -> str:
    return "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(length))


@contextmanager
def _serve(directory: Path) -> Iterator[str]:
    """A throw-away HTTP server on 127.0.0.1 for the build's ADD of a URL."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    handler = functools.partial(Handler, directory=str(directory))

    class Quiet(http.server.ThreadingHTTPServer):
        def handle_error(self, request: object, client_address: object) -> None:
            pass

    server = Quiet(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def build_context(files: dict[str, bytes]) -> io.BytesIO:
    """A docker build context (a tar) holding `files`."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def _build(api: docker.APIClient, tag: str, files: dict[str, bytes]) -> str:
    output = api.build(
        fileobj=build_context(files),
        custom_context=True,
        tag=tag,
        rm=True,
        forcerm=True,
        network_mode="none",
        decode=True,
    )
    log = list(output)
    errors = [entry for entry in log if "error" in entry]
    if errors:
        raise RuntimeError(f"building {tag} failed: {errors[0]['error']}")
    image_id: str = api.inspect_image(tag)["Id"]
    return image_id


def build_images(api: docker.APIClient, scenario: Scenario, workdir: Path) -> None:
    """The hardened image (USER, HEALTHCHECK) and the leaky one (secrets in ENV, a label,
    a private key and a cloud key in its files, a set-uid and a world-writable file, ADD of a
    URL, curl | sh in its history, tagged latest)."""
    hardened = f"{scenario.prefix}/hardened:1"
    scenario.tags["hardened"] = hardened
    scenario.images["hardened"] = _build(
        api,
        hardened,
        {"Dockerfile": f"FROM {BUSYBOX}\nUSER 65534:65534\nHEALTHCHECK CMD true\n".encode()},
    )
    # latest beside the version tag: still a versioned image
    api.tag(hardened, f"{scenario.prefix}/hardened", "latest")
    scenario.tags["hardened-latest"] = f"{scenario.prefix}/hardened:latest"
    key = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    served = workdir / "served"
    served.mkdir(exist_ok=True)
    (served / "remote.txt").write_text("fetched at build time\n")
    leaky = f"{scenario.prefix}/leaky:latest"
    scenario.tags["leaky"] = leaky
    with _serve(served) as url:
        dockerfile = "\n".join(
            [
                f"FROM {BUSYBOX}",
                f"ENV DB_PASSWORD={scenario.secret} APP_MODE=test",
                f"LABEL org.example.api-token={scenario.secret}",
                f"ADD {url}/remote.txt /opt/remote.txt",
                "RUN true || curl -fsSL https://example.invalid/install.sh | sh",
                "COPY id_ed25519 /root/.ssh/id_ed25519",
                "RUN rm /root/.ssh/id_ed25519 && cp /bin/busybox /opt/suid-tool"
                " && chmod 4755 /opt/suid-tool && touch /opt/shared && chmod 0666 /opt/shared",
                "COPY aws.env /app/aws.env",
                "",
            ]
        )
        scenario.images["leaky"] = _build(
            api,
            leaky,
            {
                "Dockerfile": dockerfile.encode(),
                "id_ed25519": key,
                "aws.env": f"AWS_ACCESS_KEY_ID={scenario.aws_key_id}\n".encode(),
            },
        )


def _hardened_host_config(api: docker.APIClient, **overrides: object) -> dict[str, object]:
    settings: dict[str, object] = {
        "read_only": True,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "mem_limit": "64m",
        "cpu_shares": 512,
        "pids_limit": 64,
        "restart_policy": {"Name": "on-failure", "MaximumRetryCount": 3},
        "network_mode": "none",
    }
    settings.update(overrides)
    config: dict[str, object] = api.create_host_config(**settings)
    return config


def create_containers(
    api: docker.APIClient, scenario: Scenario, daemon_socket: str, workdir: Path
) -> None:
    """The containers of EXPECTED_FAILS: created, some started (RUNNING), one exited."""
    hardened, leaky = scenario.tags["hardened"], scenario.tags["leaky"]
    shared = workdir / "shared"
    shared.mkdir(exist_ok=True)
    specs: dict[str, dict[str, object]] = {
        "hardened": {"image": hardened, "host_config": _hardened_host_config(api)},
        "hardened-created": {"image": hardened, "host_config": _hardened_host_config(api)},
        "hardened-exited": {
            "image": hardened,
            "command": ["true"],
            "host_config": _hardened_host_config(api),
        },
        "privileged": {
            "image": hardened,
            "host_config": _hardened_host_config(api, privileged=True),
        },
        "capabilities": {
            "image": hardened,
            "host_config": _hardened_host_config(
                api, cap_drop=None, cap_add=["SYS_ADMIN", "NET_ADMIN"]
            ),
        },
        "host-namespaces": {
            "image": hardened,
            "host_config": _hardened_host_config(
                api, pid_mode="host", ipc_mode="host", uts_mode="host", network_mode="host"
            ),
        },
        "mounts": {
            "image": hardened,
            "host_config": _hardened_host_config(
                api,
                binds=["/etc:/host-etc:rw", f"{daemon_socket}:/var/run/docker.sock"],
                mounts=[
                    docker.types.Mount("/shared", str(shared), type="bind", propagation="rshared")
                ],
                devices=["/dev/null:/dev/xnull:rwm"],
            ),
        },
        "loose": {
            "image": BUSYBOX,
            "environment": {"DB_PASSWORD": scenario.secret, "APP_MODE": "test"},
            "labels": {
                "org.example.note": "<script>alert('label')</script>",
                "org.example.api-token": scenario.secret,
            },
            "ports": [80],
            "host_config": api.create_host_config(
                port_bindings={80: ("0.0.0.0", 80)},
                restart_policy={"Name": "always"},
                ulimits=[docker.types.Ulimit(name="nofile", soft=1024, hard=2048)],
                security_opt=["seccomp=unconfined"],
                network_mode="none",
            ),
        },
        "leaky": {"image": leaky, "host_config": _hardened_host_config(api)},
        "unconfined": {
            "image": hardened,
            "host_config": _hardened_host_config(
                api, security_opt=["no-new-privileges", "apparmor=unconfined", "label=disable"]
            ),
        },
        "remote-shell": {
            "image": hardened,
            "command": ["telnetd", "-F", "-p", "2323", "-l", "/bin/sh"],
            "host_config": _hardened_host_config(api),
        },
    }
    for short, spec in specs.items():
        command = spec.pop("command", ["sleep", "3600"])
        created = api.create_container(name=scenario.name(short), command=command, **spec)
        scenario.containers[short] = created["Id"]
    for short in RUNNING:
        api.start(scenario.containers[short])
    api.start(scenario.containers["hardened-exited"])
    api.wait(scenario.containers["hardened-exited"], timeout=30)


@contextmanager
def scenario_on(base_url: str, workdir: Path, prefix: str | None = None) -> Iterator[Scenario]:
    """Build the scenario on the daemon at base_url; remove its containers and images after.
    Names start with `prefix` (random by default, so scenarios never meet)."""
    from servers.dockerd import busybox_image

    scenario = Scenario(
        prefix=prefix or "aud" + secrets.token_hex(3),
        secret="planted-" + secrets.token_hex(12),
        aws_key_id="AKIA" + _random_upper(16),
    )
    busybox_image(base_url)
    api = docker.APIClient(base_url=base_url, version="auto", timeout=120)
    try:
        build_images(api, scenario, workdir)
        socket = base_url.removeprefix("unix://")
        create_containers(api, scenario, socket, workdir)
        yield scenario
    finally:
        for cid in scenario.containers.values():
            api.remove_container(cid, force=True)
        for tag in scenario.tags.values():
            api.remove_image(tag, force=True)
        api.close()
