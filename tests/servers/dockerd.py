"""A real Docker daemon on a private unix socket, and an offline-built busybox test image.

dockerd gets its own data root, exec root, pidfile and an empty config file, and leaves
the host's network alone: `--iptables=false --ip6tables=false --bridge=none` means no
iptables rules and no docker0 bridge. Containers then default to the "none" network;
`network_mode="host"` and user-defined bridge networks (`docker network create`, reachable
from the host by the container's IP) still work.
"""

from __future__ import annotations

import io
import shutil
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from servers.process import ServerError, require_executable, run, start_process, stop_process

BUSYBOX = Path("/bin/busybox")  # Debian's busybox-static: runs in an image without libc
BUSYBOX_TAG = "auditor-test/busybox:1"
_PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
_GROUP = "root:x:0:\nnogroup:x:65534:\n"
_DIRS = {"bin": 0o755, "etc": 0o755, "root": 0o700, "tmp": 0o1777, "proc": 0o555, "sys": 0o555}


@dataclass(frozen=True)
class DockerDaemon:
    """A running dockerd reachable at base_url (`unix://<socket_path>`)."""

    base_url: str
    socket_path: Path
    data_root: Path
    exec_root: Path
    log_path: Path
    pid: int


def _pings(base_url: str) -> bool:
    """Tell whether the daemon at base_url answers /_ping."""
    try:
        with docker.APIClient(base_url=base_url, version="auto", timeout=2) as api:
            return bool(api.ping())
    except (docker.errors.DockerException, OSError):
        return False


@contextmanager
def dockerd_server(workdir: Path, timeout: float = 60.0) -> Iterator[DockerDaemon]:
    """Run dockerd with all its state under workdir.

    On exit the daemon is stopped, its mounts undone and its state removed; the log stays.
    """
    dockerd = require_executable("dockerd")
    socket_path = workdir / "docker.sock"
    base_url = f"unix://{socket_path}"
    data_root, exec_root = workdir / "data", workdir / "exec"
    config = workdir / "daemon.json"
    config.write_text("{}\n")  # keep /etc/docker/daemon.json, if any, out of the tests
    log_path = workdir / "dockerd.log"
    argv = [
        dockerd,
        f"--host={base_url}",
        f"--data-root={data_root}",
        f"--exec-root={exec_root}",
        f"--pidfile={workdir / 'docker.pid'}",
        f"--config-file={config}",
        "--iptables=false",
        "--ip6tables=false",
        "--bridge=none",
        "--shutdown-timeout=2",  # containers get 2 s after SIGTERM when the daemon stops
    ]
    try:
        proc = start_process(
            argv,
            what="dockerd",
            log_path=log_path,
            ready=lambda: _pings(base_url),
            timeout=timeout,
        )
        try:
            yield DockerDaemon(
                base_url=base_url,
                socket_path=socket_path,
                data_root=data_root,
                exec_root=exec_root,
                log_path=log_path,
                pid=proc.pid,
            )
        finally:
            try:
                _remove_networks(base_url)
            finally:
                stop_process(proc, timeout=30)
    finally:
        _unmount_below(workdir)
        for state in (data_root, exec_root):
            if state.exists():
                shutil.rmtree(state)


def _remove_networks(base_url: str) -> None:
    """Remove the containers and user-defined networks the tests left on the daemon, so that
    it deletes their bridges: a bridge outlives a daemon that stops with it, and the host's
    address pools (31 networks) run out after a few test sessions."""
    try:
        client = docker.DockerClient(base_url=base_url, timeout=60)
    except (docker.errors.DockerException, OSError):
        return  # a daemon that no longer answers: nothing more can be asked of it
    try:
        for container in client.containers.list(all=True):
            container.remove(force=True)
        client.networks.prune()
    except (docker.errors.DockerException, OSError):
        pass  # as above
    finally:
        client.close()


def _unmount_below(root: Path) -> None:
    """Unmount what dockerd left mounted under root (e.g. exec/netns/default), deepest first."""
    prefix = f"{root}/"
    with open("/proc/self/mountinfo") as mountinfo:
        points = [line.split()[4] for line in mountinfo]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        run(["umount", "--lazy", point], timeout=30)


def busybox_rootfs_tar() -> bytes:
    """Return a tar of a minimal root filesystem: static busybox, its applets, passwd, group."""
    if not BUSYBOX.exists():
        raise ServerError(f"{BUSYBOX} is missing: install busybox-static")
    applets = run([str(BUSYBOX), "--list"]).stdout.split()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, mode in _DIRS.items():
            _add_dir(tar, name, mode)
        tar.add(str(BUSYBOX), arcname="bin/busybox")
        for applet in applets:
            if applet != "busybox":
                _add_symlink(tar, f"bin/{applet}", "busybox")
        _add_file(tar, "etc/passwd", _PASSWD)
        _add_file(tar, "etc/group", _GROUP)
    return buffer.getvalue()


def _add_dir(tar: tarfile.TarFile, name: str, mode: int) -> None:
    """Add an empty directory owned by root."""
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, mode
    tar.addfile(info)


def _add_symlink(tar: tarfile.TarFile, name: str, target: str) -> None:
    """Add a symbolic link owned by root."""
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
    tar.addfile(info)


def _add_file(tar: tarfile.TarFile, name: str, text: str) -> None:
    """Add a regular file (mode 0644, owned by root) with the given content."""
    data = text.encode()
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))


def busybox_image(client_or_base_url: docker.DockerClient | str, tag: str = BUSYBOX_TAG) -> str:
    """Make sure the daemon has the busybox test image under tag, importing it if not.

    The daemon itself is the cache: a second call finds the tag and returns at once.
    Returns the tag. No registry is needed (`docker import` of a generated rootfs).
    """
    if isinstance(client_or_base_url, str):
        client = docker.DockerClient(base_url=client_or_base_url, timeout=60)
        try:
            return busybox_image(client, tag)
        finally:
            client.close()
    client = client_or_base_url
    try:
        client.images.get(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    repository, colon, version = tag.rpartition(":")
    if not colon or "/" in version:  # "name" or "host:port/name" without a tag
        repository, version = tag, "latest"
    client.api.import_image_from_data(
        busybox_rootfs_tar(), repository=repository, tag=version, changes=['CMD ["/bin/sh"]']
    )
    client.images.get(tag)  # raises ImageNotFound if the import did not produce the tag
    return tag
