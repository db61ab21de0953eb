"""The Docker daemon's host script changes nothing: every system call that could change a file
system, traced with strace while the real script runs against a real dockerd's host.

(The Engine API side is proven in test_docker_audit.py: `docker diff`, the daemon's container
and image lists and its event log are the same before and after an audit.)
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from servers.dockerd import DockerDaemon

from auditor.collectors import collector_for
from auditor.config import TargetSpec
from auditor.model import TargetKind
from auditor.profiles import load_profile
from auditor.targets.docker import DockerTarget
from auditor.targets.local import LocalTarget

pytestmark = pytest.mark.integration

MUTATING = (
    "open,openat,openat2,creat,unlink,unlinkat,rename,renameat,renameat2,mkdir,mkdirat,"
    "rmdir,chmod,fchmod,fchmodat,chown,fchown,lchown,fchownat,truncate,ftruncate,link,"
    "linkat,symlink,symlinkat,utimensat,utimes,setxattr,lsetxattr,fsetxattr,removexattr,"
    "mknod,mknodat,mount,umount2"
)
WRITE_FLAGS = re.compile(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND")
HARMLESS = re.compile(r'"/dev/(null|tty|pts/\d+)"')


class TracedLocalTarget(LocalTarget):
    """The local host, with the script run under strace (successful calls only)."""

    def __init__(self, spec: TargetSpec, log: Path) -> None:
        super().__init__(spec)
        self.log = log

    def shell_command(self, as_root: bool) -> list[str]:
        trace = ["strace", "-f", "-qq", "-e", "signal=none", "-o", str(self.log)]
        trace += ["-e", f"trace={MUTATING}", "-e", "status=successful"]
        return [*trace, *super().shell_command(as_root)]


def test_the_docker_host_script_makes_no_mutating_system_call(
    dockerd_server: DockerDaemon, tmp_path: Path
) -> None:
    profile = load_profile()
    log = tmp_path / "strace.log"
    with DockerTarget(TargetSpec(url=f"docker://{dockerd_server.base_url}")) as target:
        target.host = TracedLocalTarget(TargetSpec(url="local://"), log)
        facts = collector_for(TargetKind.DOCKER).collect(
            target, {"docker.daemon_config", "docker.daemon_host"}, profile.variables
        )
    assert all(fact.error is None for fact in facts.values()), facts
    assert facts["docker.daemon_config"].data["pid"] == dockerd_server.pid
    calls = log.read_text().splitlines()
    assert calls, "strace recorded nothing: the trace did not run"
    offending = []
    for line in calls:
        syscall = line.split(None, 1)[1] if " " in line else line
        if syscall.startswith(("open(", "openat(", "openat2(")):
            if WRITE_FLAGS.search(syscall) and not HARMLESS.search(syscall):
                offending.append(line)
        elif not syscall.startswith("+++"):
            offending.append(line)
    assert not offending, "\n".join(offending[:20])
