"""The access facts' pieces that recorded hosts do not reach: the Match-block connection specs
(run by this machine's awk over its own /etc/group and /etc/passwd), sshd values written in
forms sshd -T never prints, sudo Defaults and PAM controls with spaces.

Recorded output of whole hosts is in tests/fixtures/facts/host.*/debian12-{weak,hardened}-*.
"""

from __future__ import annotations

import subprocess

from auditor.collectors.host import parsers_access
from auditor.collectors.host.sections import _SSHD_MATCH_AWK


def _specs(*lines: str) -> list[str]:
    walk = "".join(f"L:{line}\n" for line in lines)
    done = subprocess.run(
        ["awk", _SSHD_MATCH_AWK], input=walk, capture_output=True, text=True, check=True
    )
    return done.stdout.splitlines()


def test_match_specs_follow_each_criterion() -> None:
    # root's primary group is root on every Linux host, so a Group block finds its member
    assert _specs(
        "PasswordAuthentication no",
        "#Match User commented",
        "Match User bob,!alice Address 10.0.0.0/8",
        "  match host *.example.com",
        "Match Group root",
        "Match Group no-such-group-auditor",
        "Match User !root LocalPort 2222",
        "Match All",
    ) == [
        "1 user=bob,host=auditor.invalid,addr=10.0.0.0",
        "2 user=auditor-nobody,host=x.example.com,addr=192.0.2.1",
        "3 user=root,host=auditor.invalid,addr=192.0.2.1",
        "4 -none",
        "5 user=auditor-nobody,host=auditor.invalid,addr=192.0.2.1,lport=2222",
        "6 user=auditor-nobody,host=auditor.invalid,addr=192.0.2.1",
    ]


def test_match_specs_stop_after_sixteen_blocks() -> None:
    specs = _specs(*[f"Match User u{i}" for i in range(18)])
    assert specs[15] == "16 user=u15,host=auditor.invalid,addr=192.0.2.1"
    assert specs[16:] == ["17 -limit", "18 -limit"]


FILES_RAW = """sshd:/usr/sbin/sshd
T-rc:1
T-err:sshd: no hostkeys available -- exiting.
F:/etc/ssh/sshd_config
L:LoginGraceTime 2m30s
L:ClientAliveInterval 5m
L:Ciphers -aes128-ctr
L:MACs ^hmac-md5,hmac-sha2-256
L:KexAlgorithms +diffie-hellman-group1-sha1
L:PasswordAuthentication no
L:Match Group legacy
L:  PasswordAuthentication yes
L:  LoginGraceTime 1h
E:/etc/ssh/sshd_config
"""


def test_files_mode_values_read_as_sshd_prints_them() -> None:
    fact = parsers_access.parse_sshd_config(FILES_RAW)
    assert fact["source"] == "files"
    settings = fact["settings"]
    assert settings["logingracetime"] == "150"
    assert settings["clientaliveinterval"] == "300"
    assert "ciphers" not in settings  # removing from the default leaves the default
    assert settings["macs"] == "hmac-md5,hmac-sha2-256"
    assert settings["kexalgorithms"] == "diffie-hellman-group1-sha1"
    (block,) = fact["matches"]
    assert block["judged_by"] == "files" and block["connection"] is None
    assert block["effective"] == {"passwordauthentication": "yes", "logingracetime": "3600"}


def test_sudo_defaults_options() -> None:
    raw = (
        "F:/etc/sudoers\n"
        'L:Defaults  logfile = "/var/log/sudo.log", use_pty\n'
        "L:Defaults:olduser !authenticate\n"
        "L:Defaults\tenv_reset\n"
        "L:root ALL=(ALL:ALL) ALL\n"
        "E:/etc/sudoers\n"
    )
    fact = parsers_access.parse_sudoers(raw)
    assert fact["defaults"] == ['logfile="/var/log/sudo.log"', "use_pty", "env_reset"]
    assert [r["line"] for r in fact["authenticate_disabled"]] == ["Defaults:olduser !authenticate"]


def test_pam_controls_with_spaces_and_includes() -> None:
    raw = (
        "F:/etc/pam.d/su\n"
        "L:auth       sufficient pam_rootok.so\n"
        "L:auth [success=ok default=die] pam_wheel.so use_uid\n"
        "L:@include common-auth\n"
        "F:/etc/pam.d/common-password\n"
        "L:password\t[success=1 default=ignore]\tpam_unix.so obscure sha512 nullok\n"
        "L:-password optional /usr/lib/x86_64-linux-gnu/security/pam_pwquality.so retry=3\n"
        "F:/etc/security/pwquality.conf\n"
        "L:minlen = 12\n"
        "L:enforce_for_root\n"
    )
    fact = parsers_access.parse_pam(raw)
    wheel = fact["files"]["/etc/pam.d/su"][1]
    assert wheel == {
        "type": "auth",
        "control": "[success=ok default=die]",
        "module": "pam_wheel.so",
        "args": ["use_uid"],
    }
    assert fact["su_wheel"] is True  # default=die: a non-member fails the stack
    assert fact["unix_hash"] == "sha512"
    assert fact["nullok"] == ["/etc/pam.d/common-password"]
    assert fact["pwquality"] is True
    assert fact["pwquality_settings"] == {"minlen": "12", "enforce_for_root": ""}


def test_umask_modes() -> None:
    raw = (
        "F:/etc/profile\nL:umask 022\nF:/etc/profile.d/x.sh\nL:  umask 0077\nL:readonly TMOUT=900\n"
    )
    fact = parsers_access.parse_shell_defaults(raw)
    assert [(u["value"], u["mode"]) for u in fact["umask"]] == [("022", "0755"), ("0077", "0700")]
    assert fact["tmout"] == [{"file": "/etc/profile.d/x.sh", "value": "900"}]
