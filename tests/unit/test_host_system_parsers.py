"""Edge cases of the file system, firewall, logging, update, boot and module parsers that the
recorded fixtures (tests/fixtures/facts/host.*) do not reach: each input is the shape the
snippet prints, cut down to the lines that matter."""

from __future__ import annotations

import json

import pytest

from auditor.collectors.host.parsers import FactUnavailable
from auditor.collectors.host.parsers_system import (
    parse_auto_updates,
    parse_boot,
    parse_firewall,
    parse_fs_scan,
    parse_kernel_modules,
    parse_logging,
)


def _scan(*lines: str, rc: str = "0") -> str:
    return "\n".join(["uid:0", "budget:20 1000000", "start:/", *lines, f"@find-rc {rc}",
                      "entries:10", "denied:0", "vanished:0", "other:0"]) + "\n"  # fmt: skip


def test_scan_sorts_records_by_what_find_found() -> None:
    data = parse_fs_scan(
        _scan(
            "R 1777 0 0 d /var/tmp",  # sticky: never printed by find, ignored if it were
            "R 777 0 0 d /srv/open",
            "R 4755 0 0 f /usr/bin/su",
            "R 2755 0 42 f /usr/bin/chage",
            "nouid:4242",
            "R 644 4242 0 f /opt/orphan",
            "N 666 0 0 f 2049 77 /etc",
            "Q 666 0 0 f 2049 78",
        )
    )
    assert [e["path"] for e in data["world_writable"]] == [
        "/srv/open",
        "/etc/<a name holding a newline, inode 77>",
        "<inode 78 on device 2049: its path holds a newline>",
    ]
    assert [e["path"] for e in data["setuid"]] == ["/usr/bin/su"]
    assert [e["path"] for e in data["setgid"]] == ["/usr/bin/chage"]
    assert [e["path"] for e in data["unowned"]] == ["/opt/orphan"]
    assert data["ungrouped"] == []


def test_scan_tolerates_vanished_files_but_not_other_errors() -> None:
    assert parse_fs_scan(_scan(rc="1"))["complete"] is True
    broken = _scan("E:find: '/mnt/x': Input/output error", rc="1").replace("other:0", "other:1")
    with pytest.raises(FactUnavailable, match="find failed .exit 1.: find: '/mnt/x'"):
        parse_fs_scan(broken)


def test_scan_without_gnu_find_or_cut_short_is_unavailable() -> None:
    with pytest.raises(FactUnavailable, match="GNU findutils"):
        parse_fs_scan("uid:0\n@no-gnu-find\n")
    with pytest.raises(FactUnavailable, match="did not finish"):
        parse_fs_scan("uid:0\nbudget:20 5\nstart:/\n")
    with pytest.raises(FactUnavailable, match="more than 5000"):
        parse_fs_scan(_scan() + "@truncated\n")


def _nft(*items: dict[str, object]) -> str:
    return "N:" + json.dumps({"nftables": [{"metainfo": {}}, *items]})


def test_an_input_chain_ending_in_an_unconditional_drop_denies_by_default() -> None:
    chain = {"family": "inet", "table": "t", "name": "in", "hook": "input", "policy": "accept"}
    rules = [
        {"rule": {"family": "inet", "table": "t", "chain": "in", "expr": [{"accept": None}]}},
        {"rule": {"family": "inet", "table": "t", "chain": "in",
                  "expr": [{"counter": {"packets": 0, "bytes": 0}}, {"drop": None}]}},
    ]  # fmt: skip
    data = parse_firewall(f"uid:0\n@nft-rc 0\n{_nft({'chain': chain}, *rules)}\n")
    assert data["nft"] == [{"family": "inet", "table": "t", "name": "in", "policy": "accept",
                            "rules": 2, "ends_in_drop": True}]  # fmt: skip
    assert data["default_deny_input"] is True


def test_iptables_alone_needs_ipv4_and_ipv6_to_deny() -> None:
    v4 = "4:*filter\n4::INPUT ACCEPT [0:0]\n4:-A INPUT -i lo -j ACCEPT\n4:-A INPUT -j DROP\n"
    v6 = "6:*filter\n6::INPUT ACCEPT [0:0]\n"
    data = parse_firewall(f"uid:0\n@iptables-rc 0\n{v4}@ip6tables-rc 0\n{v6}")
    assert data["iptables"] == {"policy": "accept", "rules": 2, "ends_in_drop": True}
    assert data["default_deny_input"] is False
    assert parse_firewall(f"uid:0\n@iptables-rc 0\n{v4}")["default_deny_input"] is True


def test_no_firewall_tool_is_no_firewall() -> None:
    data = parse_firewall("uid:0\n")
    assert data["tools"] == [] and data["default_deny_input"] is False


def test_logging_reads_drop_ins_in_order_and_every_forwarding_kind() -> None:
    raw = "\n".join(
        [
            "rsyslogd:yes",
            "F:/etc/systemd/journald.conf",
            "L:[Journal]",
            "L:Storage=volatile",
            "F:/etc/systemd/journald.conf.d/60-persist.conf",
            "L:Storage=persistent",
            "F:/etc/systemd/journal-upload.conf",
            "L:URL=https://logs.example:19532",
            "F:/etc/rsyslog.conf",
            "L:$FileCreateMode 0640",
            'L:module(load="imtcp")',
            "L:auth.* @logs.example",
            "F:/etc/syslog-ng/conf.d/remote.conf",
            'L:destination d_net { network("logs.example" port(514)); };',
        ]
    )
    data = parse_logging(raw + "\n")
    assert data["journald"]["storage"] == "persistent"
    assert data["file_create_mode"] == "0640"
    assert data["receives"] == ['/etc/rsyslog.conf: module(load="imtcp")']
    assert [f.split(":")[0] for f in data["forwarding"]] == [
        "/etc/systemd/journal-upload.conf",
        "/etc/rsyslog.conf",
        "/etc/syslog-ng/conf.d/remote.conf",
    ]


def test_dnf_automatic_and_insecure_apt_options() -> None:
    dnf = parse_auto_updates("manager:dnf\nD:apply_updates = yes\ndnf-automatic:yes\n")
    assert dnf["dnf_automatic"] == {"installed": True, "apply_updates": "yes"}
    apt = parse_auto_updates(
        'manager:apt\nA:APT::Get::AllowUnauthenticated "true";\n'
        'A:Acquire::AllowInsecureRepositories "0";\nT:/etc/apt/sources.list.d/x.list:3\n'
    )
    assert apt["insecure_options"] == ["APT::Get::AllowUnauthenticated true"]
    assert apt["insecure_sources"] == ["/etc/apt/sources.list.d/x.list:3"]


def test_boot_password_is_unknown_when_grub_cfg_is_unreadable() -> None:
    data = parse_boot("X:/boot/grub/grub.cfg\ncmdline:read\ncmd:audit=1\n")
    assert data["password"] is None and data["superusers"] is None
    assert data["cmdline"] == {"audit": "1"}
    found = parse_boot("cfg:/boot/grub/grub.cfg\nsuperusers:/boot/grub/grub.cfg\n")
    assert found["superusers"] is True and found["password"] is False


def test_module_names_use_underscores() -> None:
    data = parse_kernel_modules(
        "loaded:usb_storage\nD:install usb-storage /bin/false\nD:blacklist usb-storage \n"
        "tree:yes\navail:usb-storage\n"
    )
    assert data == {"loaded": ["usb_storage"], "disabled": {"usb_storage": "/bin/false"},
                    "blacklisted": ["usb_storage"], "available": ["usb_storage"]}  # fmt: skip
