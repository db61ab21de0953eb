"""Cost of the host file system scan (the host.fs_scan section: one bounded find pass) on this
machine's real root filesystem and on a Debian host with its own root filesystem (a container
on a private dockerd, entered with nsenter so its CPU time counts), beside the rest of the
host script with and without the other sections of the file system/services area.

Usage (root): python perf/host_fs_scan.py [--repeat N]. Prints one line per measurement.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import docker

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "perf"))

from host_probe_cpu import measure  # noqa: E402
from servers import debian, dockerd  # noqa: E402  (the test servers live under tests/)

from auditor.collectors.host.sections import SECTIONS  # noqa: E402

# The sections this area added besides the scan (issue 18, part 2).
AREA = ["logging", "firewall", "auto_updates", "boot", "kernel_modules"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    before = [s.name for s in SECTIONS if s.name not in [*AREA, "fs_scan"]]
    # alternately, so that the machine's load falls on both alike
    for _ in range(2):
        print("before:", measure(before, args.repeat, True, None, 20))
        print("after, without the scan:", measure(before + AREA, args.repeat, True, None, 20))
    print("this machine's root fs:", measure(["fs_scan"], args.repeat, False, None, 120))
    with tempfile.TemporaryDirectory(prefix="auditor-fs-scan-") as work:
        (Path(work) / "dockerd").mkdir()
        key = Path(work) / "id"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        with dockerd.dockerd_server(Path(work) / "dockerd") as daemon:
            client = docker.DockerClient(base_url=daemon.base_url, timeout=120)
            hosts = debian.start_hosts(
                client, [debian.HostVariant(hostname="scan")], (Path(work) / "id.pub").read_text()
            )
            try:
                pid = client.containers.get(hosts[0].container_id).attrs["State"]["Pid"]
                print("Debian container:", measure(["fs_scan"], args.repeat, False, pid, 120))
            finally:
                debian.stop_hosts(client, hosts)
                for network in client.networks.list(names=[debian.NETWORK]):
                    network.remove()
                client.close()


if __name__ == "__main__":
    main()
