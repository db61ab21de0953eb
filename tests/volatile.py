"""Host checks whose verdicts change between two audits of one machine on a shared box."""

from __future__ import annotations

from auditor.profiles import load_profile

# Listeners, processes and mounts differ by the SSH session itself, and processes, sockets and
# the file system by the other tests' servers, containers and files between two audits.
MOVING_FACTS = frozenset({"host.listening", "host.processes", "host.fs_scan"})


def moving_host_checks() -> frozenset[str]:
    """The ids of the checks that read a moving fact or judge each mount."""
    return frozenset(
        c.id
        for c in load_profile().checks
        if MOVING_FACTS & set(c.facts) or c.check.for_each == "host.mounts"
    )
