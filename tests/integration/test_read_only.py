"""The host audit changes nothing: proven by tracing every system call of the real script,
and by checksumming the files an audit would be tempted to touch."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest

from auditor.collectors import collector_for
from auditor.config import TargetSpec
from auditor.engine import plan
from auditor.model import TargetKind
from auditor.profiles import load_profile
from auditor.targets.local import LocalTarget

pytestmark = pytest.mark.integration

# Every system call that can change a file system or its metadata.
MUTATING = (
    "open,openat,openat2,creat,unlink,unlinkat,rename,renameat,renameat2,mkdir,mkdirat,"
    "rmdir,chmod,fchmod,fchmodat,chown,fchown,lchown,fchownat,truncate,ftruncate,link,"
    "linkat,symlink,symlinkat,utimensat,utimes,setxattr,lsetxattr,fsetxattr,removexattr,"
    "mknod,mknodat,mount,umount2"
)
WRITE_FLAGS = re.compile(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND")
HARMLESS = re.compile(r'"/dev/(null|tty|pts/\d+)"')


class TracedLocalTarget(LocalTarget):
    """The local host, with the audit script run under strace."""

    def __init__(self, spec: TargetSpec, log: Path) -> None:
        super().__init__(spec)
        self.log = log

    def shell_command(self, as_root: bool) -> list[str]:
        return ["strace", "-f", "-qq", "-e", "signal=none", "-o", str(self.log), "-e", f"trace={MUTATING}",
                "-e", "status=successful", *super().shell_command(as_root)]


def test_the_host_script_makes_no_mutating_system_call(tmp_path):
    profile = load_profile()
    log = tmp_path / "strace.log"
    target = TracedLocalTarget(TargetSpec(url="local://"), log)
    with target:
        facts = collector_for(TargetKind.HOST).collect(
            target, plan(profile, TargetKind.HOST), profile.variables
        )
    assert len(facts) >= 15 and all(f.error is None or "root" in f.error for f in facts.values())
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


TOUCHABLE = ["/etc/ssh", "/etc/sysctl.d", "/etc/audit", "/etc/apt", "/etc/sudoers.d",
             "/var/lib/dpkg", "/var/lib/apt", "/var/cache/apt", "/var/lib/aide", "/root/.ssh"]


def tree_digest(paths: list[str]) -> dict[str, str]:
    digest = {}
    for top in paths:
        for root, _dirs, files in os.walk(top):
            for name in [root, *(os.path.join(root, f) for f in files)]:
                try:
                    info = os.lstat(name)
                except FileNotFoundError:
                    continue
                entry = f"{info.st_mode:o} {info.st_uid} {info.st_gid} {info.st_size} {info.st_mtime_ns}"
                if os.path.isfile(name) and not os.path.islink(name):
                    entry += " " + hashlib.sha256(Path(name).read_bytes()).hexdigest()
                digest[name] = entry
    return digest


def test_a_full_audit_leaves_package_ssh_and_audit_state_untouched(auditor_cli, tmp_path):
    before = tree_digest(TOUCHABLE)
    result = auditor_cli("run", "--quiet", "--target", "local://",
                         "--report", f"json:{tmp_path / 'r.json'}")
    assert result.code in (0, 1), result.err
    assert tree_digest(TOUCHABLE) == before
