"""Two Debian 12 hosts to measure detection on: a deliberately weak one and a hardened one.

Both are containers with their own root filesystems on the test dockerd (tests/servers/
debian.py), each debootstrapped with its own packages (the weak one with a legacy network
service, the hardened one with a firewall, time sync, syslog, AIDE, auditd rules and
unattended upgrades; both with Lynis for perf/lynis_compare.py). Everything else is planted
at container start: sshd_config, accounts, PAM, sudoers, login.defs, file modes, per-container
network sysctls and, on the hardened host, tmpfs mounts for /tmp, /var/tmp, /home, /var/log
and /var/log/audit with nodev,nosuid(,noexec).

The auditor logs in as `audit`, escalating with `sudo -n /bin/sh` (the hardened host refuses
root logins); that sudo rule is the only NOPASSWD rule the audit run allow-lists
(AUDIT_VARS). What each host is expected to fail and pass is written down, before any run, in
tests/data/hosts/labels.yaml.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from servers import debian
from servers.debian import BASE_PACKAGES, HostVariant, SshHost
from servers.process import require_executable, run

# nftables.conf (input policy drop), cis.rules (CIS audit rules) and aide.conf (AIDE without
# aide-common, whose dependencies pull systemd into the image: a database of /etc and
# /usr/sbin, built at start in seconds)
HARDENED_FILES = Path(__file__).parents[1] / "data" / "hosts" / "hardened"

AUDIT_USER = "audit"
AUDIT_SUDO_RULE = f"{AUDIT_USER} ALL=(root) NOPASSWD: /bin/sh"
# Variables of the audit run: the audit account's own sudo rule is allow-listed automation.
AUDIT_VARS = {"nopasswd_allowed": [AUDIT_SUDO_RULE]}

LYNIS_PACKAGES = ("e2fsprogs", "lynis")
WEAK_PACKAGES = (*BASE_PACKAGES, *LYNIS_PACKAGES, "tftpd-hpa")
HARDENED_PACKAGES = (
    *BASE_PACKAGES,
    *LYNIS_PACKAGES,
    "unattended-upgrades",
    "chrony",
    "rsyslog",
    "aide",
    "nftables",
    "auditd",
    "libpam-pwquality",
)

# The audit account on both hosts: key login, member of sshusers, sudo for /bin/sh only.
_AUDIT_ACCOUNT = (
    "groupadd -f sshusers",
    f"useradd -m -s /bin/bash -G sshusers {AUDIT_USER}",
    f"install -d -m 700 -o {AUDIT_USER} -g {AUDIT_USER} /home/{AUDIT_USER}/.ssh",
    f"install -m 600 -o {AUDIT_USER} -g {AUDIT_USER} /root/.ssh/authorized_keys"
    f" /home/{AUDIT_USER}/.ssh/authorized_keys",
    f"printf '%s\\n' '{AUDIT_SUDO_RULE}' > /etc/sudoers.d/{AUDIT_USER}",
    f"chmod 440 /etc/sudoers.d/{AUDIT_USER}",
)


def _ipv4_conf(values: dict[str, str]) -> dict[str, str]:
    """net.ipv4.conf.{all,default}.KEY for each KEY (both: a new interface takes default)."""
    return {
        f"net.ipv4.conf.{scope}.{key}": value
        for key, value in values.items()
        for scope in ("all", "default")
    }


def weak_host() -> HostVariant:
    """A Debian host with the weaknesses listed under `weak` in tests/data/hosts/labels.yaml."""
    return HostVariant(
        hostname="weak",
        packages=WEAK_PACKAGES,
        sshd_settings={
            "PermitRootLogin": "yes",
            "PasswordAuthentication": "yes",
            "KbdInteractiveAuthentication": "yes",
            "X11Forwarding": "yes",
            "MaxAuthTries": "10",
            "PermitUserEnvironment": "yes",
            "Ciphers": "+3des-cbc",
            "AllowTcpForwarding": "yes",
            "LoginGraceTime": "120",
        },
        files={
            "/etc/weak.conf": "setting=1\n",
            "/etc/sudoers.d/ops": "ops ALL=(ALL) NOPASSWD: ALL\n",
            "/etc/crontab": "# m h dom mon dow user command\n",
        },
        commands=(
            *_AUDIT_ACCOUNT,
            # a Match block re-enables password (and empty-password) logins for group legacy
            "useradd -m -s /bin/bash -U legacy",
            "printf 'Match Group legacy\\n    PasswordAuthentication yes\\n"
            "    PermitEmptyPasswords yes\\n' >> /etc/ssh/sshd_config",
            "chmod 644 /etc/ssh/sshd_config",
            # accounts: a system account with a shell, a second uid 0, a reused uid, no password
            "usermod -s /bin/bash daemon",
            "useradd -o -u 0 -g 0 -M -s /bin/sh toor",
            "useradd -o -u 1001 -M -s /usr/sbin/nologin dupuid",
            "useradd -M -s /bin/bash guest && passwd -d guest >/dev/null",
            "useradd -M -s /bin/bash ops && chmod 440 /etc/sudoers.d/ops",
            # Debian's defaults, stated: no password ageing, umask 022; su open to everyone
            "sed -i 's/^PASS_MAX_DAYS.*/PASS_MAX_DAYS\\t99999/; s/^UMASK.*/UMASK\\t\\t022/'"
            " /etc/login.defs",
            "sed -i '/use_pty/d' /etc/sudoers",
            # file system
            "chmod 666 /etc/weak.conf /etc/crontab",
            "mkdir -p /usr/local/share/open && chmod 0777 /usr/local/share/open",
            "touch /usr/local/lib/orphan && chown 4242:4242 /usr/local/lib/orphan",
            "cp /bin/true /usr/local/bin/rootshell && chmod 4755 /usr/local/bin/rootshell",
            "chmod 644 /etc/shadow",
            # a legacy network service, listening
            "in.tftpd --listen --address 0.0.0.0:69 --secure /srv/tftp",
        ),
        sysctls=_ipv4_conf(
            {
                "accept_redirects": "1",
                "send_redirects": "1",
                "accept_source_route": "1",
                "log_martians": "0",
                "rp_filter": "0",
            }
        ),
        cap_add=("NET_ADMIN",),
    )


HARDENED_SSHD = {
    "PermitRootLogin": "no",
    "PasswordAuthentication": "no",
    "KbdInteractiveAuthentication": "no",
    "PermitEmptyPasswords": "no",
    "X11Forwarding": "no",
    "MaxAuthTries": "4",
    "PermitUserEnvironment": "no",
    "Ciphers": "aes256-gcm@openssh.com,aes128-gcm@openssh.com,aes256-ctr,aes192-ctr,aes128-ctr",
    "MACs": "hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com,hmac-sha2-512,"
    "hmac-sha2-256",
    "KexAlgorithms": "sntrup761x25519-sha512@openssh.com,curve25519-sha256,"
    "curve25519-sha256@libssh.org,diffie-hellman-group16-sha512,"
    "diffie-hellman-group18-sha512",
    "AllowTcpForwarding": "no",
    "AllowAgentForwarding": "no",
    "GatewayPorts": "no",
    "DisableForwarding": "yes",
    "Banner": "/etc/issue.net",
    "LoginGraceTime": "60",
    "ClientAliveInterval": "15",
    "ClientAliveCountMax": "3",
    "MaxStartups": "10:30:60",
    "MaxSessions": "10",
    "LogLevel": "VERBOSE",
    "UsePAM": "yes",
    "HostbasedAuthentication": "no",
    "IgnoreRhosts": "yes",
    "GSSAPIAuthentication": "no",
    "AllowGroups": "sshusers",
}


def hardened_host() -> HostVariant:
    """A Debian host set up to pass every check listed under `hardened` in labels.yaml."""
    return HostVariant(
        hostname="hardened",
        packages=HARDENED_PACKAGES,
        sshd_settings=HARDENED_SSHD,
        files={
            "/etc/issue.net": "Authorised use only. Activity is logged.\n",
            "/etc/sudoers.d/logging": 'Defaults logfile="/var/log/sudo.log"\n',
            "/etc/crontab": "# m h dom mon dow user command\n",
            "/etc/nftables.conf": (HARDENED_FILES / "nftables.conf").read_text(),
            "/etc/audit/rules.d/cis.rules": (HARDENED_FILES / "cis.rules").read_text(),
            "/etc/aide/aide.conf": (HARDENED_FILES / "aide.conf").read_text(),
            "/etc/cron.daily/aide": "#!/bin/sh\nexec aide --config /etc/aide/aide.conf --check\n",
            "/etc/apt/apt.conf.d/20auto-upgrades": 'APT::Periodic::Update-Package-Lists "1";\n'
            'APT::Periodic::Unattended-Upgrade "1";\n',
            "/etc/profile.d/tmout.sh": "TMOUT=900\nreadonly TMOUT\nexport TMOUT\n",
            "/etc/security/limits.d/core.conf": "* hard core 0\n",
            "/etc/security/pwquality.conf": "minlen = 14\n",
            "/etc/rsyslog.d/forward.conf": 'action(type="omfwd" target="127.0.0.1" port="514"'
            ' protocol="tcp")\n',
        },
        commands=(
            *_AUDIT_ACCOUNT,
            # a Match block that only tightens the global settings
            "groupadd legacy",
            "printf 'Match Group legacy\\n    MaxAuthTries 2\\n' >> /etc/ssh/sshd_config",
            "chown root:root /etc/ssh/sshd_config && chmod 600 /etc/ssh/sshd_config",
            "chmod 440 /etc/sudoers.d/logging",
            "chown root:root /etc/crontab && chmod 600 /etc/crontab",
            "chmod 640 /etc/audit/rules.d/cis.rules",
            # auditd keeps its logs and stops the host rather than lose records
            "sed -i 's/^max_log_file_action.*/max_log_file_action = keep_logs/;"
            " s/^disk_full_action.*/disk_full_action = halt/;"
            " s/^disk_error_action.*/disk_error_action = halt/;"
            " s/^space_left_action.*/space_left_action = email/;"
            " s/^admin_space_left_action.*/admin_space_left_action = halt/' /etc/audit/auditd.conf",
            # an audit rule for every set-uid/set-gid program, before cis.rules (which ends -e 2)
            "find / -xdev -type f -perm /6000 | sed 's|.*|-a always,exit -F path=& -F perm=x"
            " -F auid>=1000 -F auid!=unset -k privileged|'"
            " > /etc/audit/rules.d/50-privileged.rules",
            # PAM: lock out after failures, no empty passwords, the pwquality minimum above
            "sed -i 's/ nullok//' /etc/pam.d/common-auth /etc/pam.d/common-password",
            "sed -i '/pam_unix.so/i auth required pam_faillock.so preauth' /etc/pam.d/common-auth",
            "echo 'account required pam_faillock.so' >> /etc/pam.d/common-account",
            f"chmod 750 /home/{AUDIT_USER}",
            "for d in /etc/cron.hourly /etc/cron.daily /etc/cron.weekly /etc/cron.monthly"
            ' /etc/cron.d; do if [ -d "$d" ]; then chmod 700 "$d"; fi; done',
            "sed -i 's/^PASS_MAX_DAYS.*/PASS_MAX_DAYS\\t365/;"
            " s/^PASS_MIN_DAYS.*/PASS_MIN_DAYS\\t1/; s/^UMASK.*/UMASK\\t\\t027/' /etc/login.defs",
            # su only for the (empty) group sugroup
            "groupadd sugroup",
            "sed -i '1a auth       required   pam_wheel.so use_uid group=sugroup' /etc/pam.d/su",
            # running services: firewall rules, time sync, syslog; AIDE's database in place
            "nft -f /etc/nftables.conf",
            "chronyd -x",
            "rsyslogd",
            "chmod 755 /etc/cron.daily/aide && install -d -m 700 /var/lib/aide",
            "aide --config /etc/aide/aide.conf --init >/dev/null",
            "mv /var/lib/aide/aide.db.new /var/lib/aide/aide.db",
        ),
        sysctls=_ipv4_conf(
            {
                "accept_redirects": "0",
                "send_redirects": "0",
                "accept_source_route": "0",
                "secure_redirects": "0",
                "log_martians": "1",
                "rp_filter": "1",
            }
        )
        | {
            "net.ipv4.tcp_syncookies": "1",
            "net.ipv4.icmp_echo_ignore_broadcasts": "1",
            "net.ipv4.icmp_ignore_bogus_error_responses": "1",
            "net.ipv6.conf.all.accept_ra": "0",
            "net.ipv6.conf.default.accept_ra": "0",
            "net.ipv6.conf.all.accept_redirects": "0",
            "net.ipv6.conf.default.accept_redirects": "0",
        },
        # file systems of their own, with the options CIS asks for (/var itself cannot be)
        tmpfs={
            "/tmp": "rw,nodev,nosuid,noexec",
            "/var/tmp": "rw,nodev,nosuid,noexec,mode=1777",
            "/home": "rw,nodev,nosuid,mode=0755",
            "/var/log": "rw,nodev,nosuid,noexec,mode=0755",
            "/var/log/audit": "rw,nodev,nosuid,noexec,mode=0700",
        },
        cap_add=("NET_ADMIN",),
    )


def inventory(hosts: Iterable[SshHost], key: Path, known_hosts: Path) -> dict[str, Any]:
    """An auditor inventory that reaches the hosts as AUDIT_USER with sudo and AUDIT_VARS."""
    return {
        "defaults": {
            "user": AUDIT_USER,
            "sudo": True,
            "key": str(key),
            "known_hosts": str(known_hosts),
            "ssh_config": "/dev/null",
            "vars": AUDIT_VARS,
        },
        "hosts": {h.name: {"host": "127.0.0.1", "port": h.port} for h in hosts},
    }


@contextmanager
def started(client: Any, work: Path) -> Iterator[tuple[list[SshHost], Path, Path]]:
    """The weak and the hardened host running on `client`'s daemon, with a fresh client key
    and a known_hosts file that trusts them: (hosts, key, known_hosts); stopped afterwards."""
    key = work / "client_ed25519"
    run([require_executable("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
    hosts = debian.start_hosts(
        client, [weak_host(), hardened_host()], key.with_suffix(".pub").read_text(), timeout=300
    )
    try:
        known_hosts = work / "known_hosts"
        known_hosts.write_text("\n".join(debian.known_hosts_lines(client, hosts)) + "\n")
        yield hosts, key, known_hosts
    finally:
        debian.stop_hosts(client, hosts)
