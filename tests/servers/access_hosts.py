"""A weak and a hardened Debian host for the sshd, account and kernel checks (issue 18).

Each is a list of shell commands run as root on the Debian test image (a container started by
tests/servers/debian.py, or a chroot of its root filesystem when fixtures are recorded by
tests/fixtures/record_host_access.py), plus the network sysctls a container is started with.
What each host must fail or pass is written down next to it, before any run, in
WEAK_FAILS / HARDENED_PASSES; the integration test asserts exactly that.
"""

from __future__ import annotations

SSHD_WEAK = """\
PermitRootLogin yes
PasswordAuthentication yes
X11Forwarding yes
MaxAuthTries 10
PermitUserEnvironment yes
Ciphers +3des-cbc
AllowTcpForwarding yes
LoginGraceTime 0
"""

SSHD_HARDENED = """\
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitEmptyPasswords no
X11Forwarding no
MaxAuthTries 4
PermitUserEnvironment no
Ciphers aes256-gcm@openssh.com,aes128-gcm@openssh.com,aes256-ctr,aes192-ctr,aes128-ctr,\
chacha20-poly1305@openssh.com
MACs hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com,hmac-sha2-512,hmac-sha2-256
KexAlgorithms sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org,\
diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,ecdh-sha2-nistp521,\
ecdh-sha2-nistp384,ecdh-sha2-nistp256,diffie-hellman-group-exchange-sha256
AllowTcpForwarding no
AllowAgentForwarding no
GatewayPorts no
PermitTunnel no
Banner /etc/issue.net
LoginGraceTime 60
ClientAliveInterval 300
ClientAliveCountMax 3
MaxStartups 10:30:60
MaxSessions 10
LogLevel VERBOSE
HostbasedAuthentication no
IgnoreRhosts yes
GSSAPIAuthentication no
AllowGroups sshusers
"""


def _write(path: str, text: str, mode: str) -> list[str]:
    return [f"cat > {path} <<'AUDITOR_EOF'\n{text}AUDITOR_EOF", f"chmod {mode} {path}"]


# A Match block re-enabling passwords for a group, an extra system account with a shell, a
# second account on one UID, Debian's own login.defs (PASS_MAX_DAYS 99999, UMASK 022), su
# open to all, sudo without use_pty (Debian's sudoers sets it) or logfile, a NOPASSWD rule.
WEAK_COMMANDS: tuple[str, ...] = (
    *_write("/etc/ssh/sshd_config.d/50-weak.conf", SSHD_WEAK, "0644"),
    "chmod 0644 /etc/ssh/sshd_config",
    "groupadd legacy",
    "useradd -m -s /bin/bash -G legacy olduser",
    "printf 'Match Group legacy\\n  PasswordAuthentication yes\\n' >> /etc/ssh/sshd_config",
    "useradd -r -s /bin/bash svcweak",
    'useradd -M -o -u "$(id -u olduser)" -s /bin/bash twin',
    *_write("/etc/sudoers.d/legacy", "olduser ALL=(ALL) NOPASSWD: ALL\n", "0440"),
    "sed -i '/^Defaults[[:space:]]*use_pty/d' /etc/sudoers",
)

# The audit logs in as `audit` (member of sshusers) and escapes with sudo; a Match block that
# only tightens (MaxSessions) for that group.
HARDENED_COMMANDS: tuple[str, ...] = (
    *_write("/etc/ssh/sshd_config.d/50-hardening.conf", SSHD_HARDENED, "0600"),
    "printf 'Match Group sshusers\\n  MaxSessions 2\\n' >> /etc/ssh/sshd_config",
    "chmod 0600 /etc/ssh/sshd_config",
    "printf 'Authorized use only.\\n' > /etc/issue.net",
    "sed -i -e 's/^PASS_MAX_DAYS.*/PASS_MAX_DAYS\\t365/' -e 's/^PASS_MIN_DAYS.*/PASS_MIN_DAYS\\t1/'"
    " -e 's/^UMASK.*/UMASK\\t\\t027/' -e 's/^#* *ENCRYPT_METHOD.*/ENCRYPT_METHOD YESCRYPT/'"
    " /etc/login.defs",
    "groupadd sshusers",
    "groupadd sugroup",
    "useradd -m -s /bin/bash -G sshusers audit",
    "mkdir -p /home/audit/.ssh",
    "cp /root/.ssh/authorized_keys /home/audit/.ssh/ 2>/dev/null || :",
    "chown -R audit:audit /home/audit/.ssh && chmod 700 /home/audit/.ssh",
    "sed -i '/pam_rootok.so/a auth       required   pam_wheel.so use_uid group=sugroup'"
    " /etc/pam.d/su",
    "sed -i 's/ nullok//' /etc/pam.d/common-auth",
    *_write(
        "/etc/sudoers.d/audit",
        'Defaults use_pty\nDefaults logfile="/var/log/sudo.log"\naudit ALL=(ALL) NOPASSWD: ALL\n',
        "0440",
    ),
    *_write("/etc/profile.d/50-umask.sh", "umask 027\n", "0644"),
    *_write("/etc/profile.d/50-tmout.sh", "TMOUT=900\nreadonly TMOUT\nexport TMOUT\n", "0644"),
    *_write("/etc/security/limits.d/50-core.conf", "* hard core 0\n", "0644"),
)

# Network sysctls are per network namespace: a container gets its own.
WEAK_SYSCTLS = {
    "net.ipv4.conf.all.accept_redirects": "1",
    "net.ipv4.conf.all.send_redirects": "1",
    "net.ipv4.conf.all.accept_source_route": "1",
    "net.ipv4.conf.all.log_martians": "0",
    "net.ipv4.conf.all.rp_filter": "0",
}
HARDENED_SYSCTLS = {
    "net.ipv4.conf.all.accept_redirects": "0",
    "net.ipv4.conf.default.accept_redirects": "0",
    "net.ipv4.conf.all.secure_redirects": "0",
    "net.ipv4.conf.default.secure_redirects": "0",
    "net.ipv4.conf.all.send_redirects": "0",
    "net.ipv4.conf.default.send_redirects": "0",
    "net.ipv4.conf.all.accept_source_route": "0",
    "net.ipv4.conf.default.accept_source_route": "0",
    "net.ipv4.conf.all.log_martians": "1",
    "net.ipv4.conf.default.log_martians": "1",
    "net.ipv4.conf.all.rp_filter": "1",
    "net.ipv4.conf.default.rp_filter": "1",
    "net.ipv6.conf.all.accept_redirects": "0",
    "net.ipv6.conf.default.accept_redirects": "0",
}

# Written down before the first run: the checks the weak host fails and the hardened passes.
WEAK_FAILS = (
    "host.sshd.no-root-login",
    "host.sshd.no-password-auth",
    "host.sshd.x11-forwarding",
    "host.sshd.max-auth-tries",
    "host.sshd.permit-user-environment",
    "host.sshd.strong-crypto",
    "host.sshd.tcp-forwarding",
    "host.sshd.banner",
    "host.sshd.login-grace-time",
    "host.sshd.config-perms",
    "host.sshd.match-blocks",
    "host.sshd.access-restricted",
    "host.accounts.system-no-login-shell",
    "host.accounts.unique-uids",
    "host.login-defs.pass-max-days",
    "host.login-defs.umask",
    "host.su.restricted",
    "host.sudo.use-pty",
    "host.sudo.logfile",
    "host.sudo.no-nopasswd",
    "host.pam.no-nullok",
    "host.limits.core-dumps",
    "host.sysctl.accept-redirects",
    "host.sysctl.send-redirects",
    "host.sysctl.source-route",
    "host.sysctl.log-martians",
    "host.sysctl.rp-filter",
)
HARDENED_PASSES = tuple(c for c in WEAK_FAILS if c != "host.sudo.no-nopasswd") + (
    "host.sshd.client-alive",
    "host.sshd.max-startups",
    "host.sshd.max-sessions",
    "host.sshd.agent-forwarding",
    "host.sshd.log-level",
    "host.sshd.use-pam",
    "host.sshd.host-key-perms",
    "host.accounts.home-dirs",
    "host.login-defs.pass-min-days",
    "host.login-defs.encrypt-method",
    "host.shell.timeout",
    "host.shell.umask",
)
