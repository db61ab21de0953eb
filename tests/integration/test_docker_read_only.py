"""The Docker daemon's host script changes nothing: every system call that could change a file
system, traced with strace while the real script runs against a real dockerd's host.

(The Engine API side is proven in test_docker_audit.py: `docker diff`, the daemon's container
and image lists and its event log are the same before and after an audit.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
from servers.dockerd import DockerDaemon
from tracing import TracedLocalTarget, mutating_calls

from auditor.collectors import collector_for
from auditor.config import TargetSpec
from auditor.model import TargetKind
from auditor.profiles import load_profile
from auditor.targets.docker import DockerTarget

pytestmark = pytest.mark.integration


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
    offending = mutating_calls(log)
    assert not offending, "\n".join(offending[:20])
