"""Proof of read-only probes: run a host script under strace and list every successful
system call that could change a file system or its metadata."""

from __future__ import annotations

import re
from pathlib import Path

from auditor.config import TargetSpec
from auditor.targets.local import LocalTarget

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


def mutating_calls(log: Path) -> list[str]:
    """The traced calls that wrote: opens for writing (but /dev/null and terminals) and
    every other mutating call that succeeded."""
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
    return offending
