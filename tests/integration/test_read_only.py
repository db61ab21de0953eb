"""The host audit changes nothing: proven by tracing every system call of the real script,
and by checksumming the files an audit would be tempted to touch."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from tracing import TracedLocalTarget, mutating_calls

from auditor.collectors import collector_for
from auditor.config import TargetSpec
from auditor.engine import plan
from auditor.model import TargetKind
from auditor.profiles import load_profile

pytestmark = pytest.mark.integration


def test_the_host_script_makes_no_mutating_system_call(tmp_path):
    profile = load_profile()
    log = tmp_path / "strace.log"
    target = TracedLocalTarget(TargetSpec(url="local://"), log)
    with target:
        parse = collector_for(TargetKind.HOST).collect(
            target, plan(profile, TargetKind.HOST), profile.variables
        )
    assert callable(parse)  # the output is parsed once the target is closed
    facts = parse()
    # under strace the file system scan may reach its time budget: an error that says so
    allowed = ("root", "budget (")
    assert len(facts) >= 15
    assert all(f.error is None or any(a in f.error for a in allowed) for f in facts.values())
    offending = mutating_calls(log)
    assert not offending, "\n".join(offending[:20])


TOUCHABLE = [
    "/etc/ssh",
    "/etc/sysctl.d",
    "/etc/audit",
    "/etc/apt",
    "/etc/sudoers.d",
    "/var/lib/dpkg",
    "/var/lib/apt",
    "/var/cache/apt",
    "/var/lib/aide",
    "/root/.ssh",
]


def tree_digest(paths: list[str]) -> dict[str, str]:
    digest = {}
    for top in paths:
        for root, _dirs, files in os.walk(top):
            for name in [root, *(os.path.join(root, f) for f in files)]:
                try:
                    info = os.lstat(name)
                except FileNotFoundError:
                    continue
                entry = f"{info.st_mode:o} {info.st_uid}:{info.st_gid} {info.st_size}"
                entry += f" {info.st_mtime_ns}"
                if os.path.isfile(name) and not os.path.islink(name):
                    entry += " " + hashlib.sha256(Path(name).read_bytes()).hexdigest()
                digest[name] = entry
    return digest


def test_a_full_audit_leaves_package_ssh_and_audit_state_untouched(auditor_cli, tmp_path):
    before = tree_digest(TOUCHABLE)
    result = auditor_cli(
        "run", "--quiet", "--target", "local://", "--report", f"json:{tmp_path / 'r.json'}"
    )
    assert result.code in (0, 1), result.err
    assert tree_digest(TOUCHABLE) == before
