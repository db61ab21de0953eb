"""Debian hosts with their own root filesystems: containers running sshd on the test dockerd.

The image is a `debootstrap --variant=minbase` Debian 12 with openssh-server, built offline
from the mirror apt is configured with and imported with `docker import` (no registry). The
root filesystem tar is cached under AUDITOR_TEST_CACHE (default /var/cache/auditor-tests),
keyed by the package list, so a machine builds it once; the daemon itself caches the image.

Each host is a container on a user-defined bridge network of the test daemon (its own root
filesystem, hostname, host keys and sshd settings), reached on a loopback port that the
daemon's userland proxy publishes: the auditor only ever connects to 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors

from servers.process import ServerError, free_port, require_executable, run

DEBIAN_REPOSITORY = "auditor-test/debian-sshd"
BASE_PACKAGES = ("openssh-server", "procps", "iproute2", "sudo")
# Small packages kept as .deb files in the image so that hosts can differ in what is installed.
OPTIONAL_PACKAGES = ("less", "nano", "vim-tiny", "netcat-openbsd", "file")
# Those of them whose dependencies the image has (vim-tiny needs vim-common, file libmagic1).
STANDALONE_PACKAGES = ("less", "nano", "netcat-openbsd")
NETWORK = "auditor-test-hosts"


def cache_dir() -> Path:
    """Where built root filesystems are kept between test sessions."""
    return Path(os.environ.get("AUDITOR_TEST_CACHE", "/var/cache/auditor-tests"))


def apt_mirror() -> str:
    """The Debian mirror apt is configured with for bookworm (deb822 or one-line sources)."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:(.*)$", stanza, re.M)
            if uris and suites and "bookworm" in suites.group(1).split():
                return uris.group(1)
        for match in re.finditer(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\s", text, re.M):
            return match.group(1)
    return "http://deb.debian.org/debian"


def _key(packages: Sequence[str]) -> str:
    return hashlib.sha256(" ".join(packages).encode()).hexdigest()[:12]


def debian_rootfs_tar(packages: Sequence[str] = BASE_PACKAGES) -> Path:
    """Return a cached tar of a minbase Debian 12 root filesystem with `packages` installed.

    Built once per machine (a few minutes) under a lock, so concurrent test workers wait
    for one build instead of running several.
    """
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    tar = directory / f"debian12-{_key(packages)}.tar"
    if tar.exists():
        return tar
    with open(directory / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if tar.exists():
            return tar
        _build_rootfs(tar, packages)
    return tar


def _build_rootfs(tar: Path, packages: Sequence[str]) -> None:
    debootstrap = require_executable("debootstrap")
    root = tar.with_suffix(".d")
    run(["rm", "-rf", str(root)])
    run(
        [
            debootstrap,
            "--variant=minbase",
            f"--include={','.join(packages)}",
            "bookworm",
            str(root),
            apt_mirror(),
        ],
        timeout=900,
    )
    debs = root / "opt" / "debs"
    debs.mkdir(parents=True)
    run(["chroot", str(root), "apt-get", "download", "-q", *OPTIONAL_PACKAGES], timeout=300)
    for deb in root.glob("*.deb"):
        deb.rename(debs / deb.name)
    # Host keys are made per container at start; the image carries none.
    for key in (root / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()
    run(["rm", "-rf", str(root / "var/cache/apt/archives"), str(root / "var/lib/apt/lists")])
    partial = tar.with_suffix(".partial")
    run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(partial), "."], timeout=300)
    partial.rename(tar)
    run(["rm", "-rf", str(root)])


def debian_image(client: docker.DockerClient, packages: Sequence[str] = BASE_PACKAGES) -> str:
    """Make sure the daemon has the Debian sshd image; return its tag."""
    tag = f"{DEBIAN_REPOSITORY}:{_key(packages)}"
    try:
        client.images.get(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    with open(debian_rootfs_tar(packages), "rb") as data:
        client.api.import_image_from_data(
            data,
            repository=DEBIAN_REPOSITORY,
            tag=_key(packages),
            changes=['CMD ["/bin/sh", "/start-host"]'],
        )
    client.images.get(tag)
    return tag


@dataclass(frozen=True)
class HostVariant:
    """How one host differs from the image: settings a real fleet's hosts differ in."""

    hostname: str
    sshd_settings: dict[str, str] = field(default_factory=dict)
    remove_packages: tuple[str, ...] = ()
    install_packages: tuple[str, ...] = ()
    files: dict[str, str] = field(default_factory=dict)
    commands: tuple[str, ...] = ()
    sysctls: dict[str, str] = field(default_factory=dict)  # network-namespaced ones only
    packages: tuple[str, ...] = BASE_PACKAGES  # what the image is debootstrapped with
    tmpfs: dict[str, str] = field(default_factory=dict)  # mount point -> mount options
    cap_add: tuple[str, ...] = ()  # e.g. NET_ADMIN, for a host that loads firewall rules


def varied_host(index: int) -> HostVariant:
    """The index-th host of a varied fleet: its own name, packages, sshd and sysctl settings,
    and files; no two of the first 64 hosts print the same text for all of them."""
    return HostVariant(
        hostname=f"host{index:03d}",
        sshd_settings={
            "PermitRootLogin": ("prohibit-password", "yes")[index % 2],
            "X11Forwarding": ("no", "yes")[index % 3 == 0],
            "MaxAuthTries": str(3 + index % 5),
        },
        install_packages=tuple(p for i, p in enumerate(STANDALONE_PACKAGES) if (index >> i) & 1),
        commands=(
            ("sed -i 's/^PASS_MAX_DAYS.*/PASS_MAX_DAYS\t90/' /etc/login.defs",)
            if (index >> 3) & 1
            else ()
        ),
        files={"/etc/motd": f"host {index}\n", "/etc/issue.net": f"Debian host{index:03d}\n"},
        sysctls={
            "net.ipv4.ip_forward": str((index >> 4) & 1),
            # not accept_redirects: the kernel resets it whenever ip_forward is written
            "net.ipv4.conf.all.log_martians": str((index >> 5) & 1),
        },
    )


@dataclass(frozen=True)
class SshHost:
    """A running Debian container whose sshd answers on 127.0.0.1:port."""

    name: str
    port: int
    container_id: str


def _start_script(variant: HostVariant, authorized_key: str) -> str:
    """The shell script a host runs as PID 1: apply its variant, then exec sshd."""
    lines = [
        "set -e",
        "mkdir -p /run/sshd /root/.ssh && chmod 700 /root/.ssh",
        f"printf '%s\\n' '{authorized_key}' > /root/.ssh/authorized_keys",
        "ssh-keygen -A >/dev/null",
    ]
    for keyword, value in variant.sshd_settings.items():
        lines.append(f"sed -i '/^#\\?{keyword} /d' /etc/ssh/sshd_config")
        lines.append(f"echo '{keyword} {value}' >> /etc/ssh/sshd_config")
    for path, text in variant.files.items():
        lines.append(f"mkdir -p '{os.path.dirname(path)}' && printf '%s' '{text}' > '{path}'")
    if variant.install_packages:
        debs = " ".join(f"/opt/debs/{name}_*.deb" for name in variant.install_packages)
        lines.append(f"dpkg -i {debs} >/dev/null")
    if variant.remove_packages:
        lines.append(f"dpkg --purge {' '.join(variant.remove_packages)} >/dev/null")
    lines.extend(variant.commands)
    lines.append("exec /usr/sbin/sshd -D -e")
    return "\n".join(lines) + "\n"


def ensure_network(client: docker.DockerClient) -> str:
    """A user-defined bridge of the test daemon for the hosts (the daemon has no default one)."""
    try:
        client.networks.get(NETWORK)
    except docker.errors.NotFound:
        client.networks.create(NETWORK, driver="bridge")
    return NETWORK


def start_hosts(
    client: docker.DockerClient,
    variants: Iterable[HostVariant],
    authorized_key: str,
    image: str | None = None,
    timeout: float = 120.0,
) -> list[SshHost]:
    """Start one container per variant and wait until each sshd answers on its port (on
    `image`, or on the image of the variant's packages)."""
    network = ensure_network(client)
    hosts = []
    for variant in variants:
        script = _start_script(variant, authorized_key)
        container = client.containers.run(
            image or debian_image(client, variant.packages),
            ["/bin/sh", "-c", script],
            name=f"auditor-{variant.hostname}-{os.getpid()}",
            hostname=variant.hostname,
            network=network,
            # a free port chosen here: the daemon's own choice starts at 32768 like every
            # other daemon's on a shared box, and collides with theirs
            ports={"22/tcp": ("127.0.0.1", free_port())},
            detach=True,
            labels={"auditor-test": "ssh-host"},
            sysctls=variant.sysctls or None,
            tmpfs=variant.tmpfs or None,
            cap_add=list(variant.cap_add) or None,
        )
        hosts.append(container)
    ready = []
    for container in hosts:
        port = _published_port(container, timeout)
        _wait_for_banner(port, timeout)
        ready.append(
            SshHost(
                name=container.attrs["Config"]["Hostname"], port=port, container_id=container.id
            )
        )
    return ready


def _published_port(container: docker.models.containers.Container, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        container.reload()
        bindings = (container.attrs["NetworkSettings"]["Ports"] or {}).get("22/tcp")
        if bindings:
            return int(bindings[0]["HostPort"])
        if container.status == "exited":
            raise ServerError(f"host {container.name} exited: {container.logs()[-2000:]!r}")
        time.sleep(0.2)
    raise ServerError(f"host {container.name} published no port within {timeout:.0f}s")


def _wait_for_banner(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                if sock.recv(4).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise ServerError(f"no sshd banner on 127.0.0.1:{port} within {timeout:.0f}s")


def stop_hosts(client: docker.DockerClient, hosts: Iterable[SshHost]) -> None:
    """Remove the hosts' containers (and their root filesystems)."""
    for host in hosts:
        with contextlib.suppress(docker.errors.NotFound):
            client.containers.get(host.container_id).remove(force=True)


def known_hosts_lines(client: docker.DockerClient, hosts: Iterable[SshHost]) -> list[str]:
    """known_hosts lines for the hosts' keys, read from inside each container (trust on purpose)."""
    lines = []
    for host in hosts:
        container = client.containers.get(host.container_id)
        exit_code, output = container.exec_run(["cat", "/etc/ssh/ssh_host_ed25519_key.pub"])
        if exit_code != 0:
            raise ServerError(f"no host key in {host.name}: {output!r}")
        key_type, key = output.decode().split()[:2]
        lines.append(f"[127.0.0.1]:{host.port} {key_type} {key}")
    return lines
