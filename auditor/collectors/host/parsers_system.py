"""Pure parsers for the file system, services, logging and boot sections of the host script.

As in parsers.py: the snippet's escaped stdout in, JSON-serialisable data out, no I/O; evidence
that could not be read raises `FactUnavailable` (with the reason) rather than looking compliant.
"""

from __future__ import annotations

import json
from typing import Any

from auditor.collectors.host.escaping import split_lines, unescape
from auditor.collectors.host.parsers import (
    FactUnavailable,
    _all,
    _first,
    _marker,
    _tagged,
    file_lines,
)

__all__ = [
    "parse_auditd_conf",
    "parse_auto_updates",
    "parse_boot",
    "parse_firewall",
    "parse_fs_scan",
    "parse_kernel_modules",
    "parse_logging",
]

# ---------------------------------------------------------------------------------- fs_scan

_TYPES = {"f": "file", "d": "directory", "l": "symlink", "p": "fifo", "s": "socket",
          "c": "char-device", "b": "block-device"}  # fmt: skip


def _scan_entry(tag: str, value: str) -> dict[str, Any] | None:
    """One record of find: `R MODE UID GID TYPE PATH`; for a name holding a newline
    `N MODE UID GID TYPE DEV INODE DIR`, or `Q MODE UID GID TYPE DEV INODE` when a directory's
    name holds it, so no name can forge a record."""
    parts = value.split(" ", {"R": 4, "N": 6, "Q": 5}[tag])
    if len(parts) < 5 or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    if tag == "R":
        path = unescape(parts[4])
    elif tag == "N" and len(parts) == 7:
        path = f"{unescape(parts[6]).rstrip('/')}/<a name holding a newline, inode {parts[5]}>"
    elif tag == "Q" and len(parts) == 6:
        path = f"<inode {parts[5]} on device {parts[4]}: its path holds a newline>"
    else:
        return None
    mode = int(parts[0], 8)
    return {
        "path": path,
        "type": _TYPES.get(parts[3], parts[3]),
        "mode": f"{mode & 0o7777:04o}",
        "uid": int(parts[1]),
        "gid": int(parts[2]),
        "_bits": mode,
    }


def parse_fs_scan(raw: str) -> dict[str, Any]:
    """World-writable files and directories (directories only without the sticky bit), files
    whose owner or group has no account, set-uid and set-gid files, from one find pass.

    `unowned`/`ungrouped` are judged on the host against the accounts `getent` lists. The scan
    skips the data roots of running dockerd/containerd and daemon.json (`pruned`), and
    is bounded by `budget` (seconds, entries: vars.fs_scan_max_seconds/_max_entries); when a
    bound stops it, or directories could not be read (not root), the fact is unavailable and
    says which, since an incomplete scan proves nothing. Example::

        {"complete": True, "entries": 48211, "roots": ["/", "/boot"], "pruned": [],
         "world_writable": [{"path": "/etc/weak.conf", "type": "file", "mode": "0666",
                             "uid": 0, "gid": 0}],
         "unowned": [], "ungrouped": [],
         "setuid": [{"path": "/usr/bin/su", "type": "file", "mode": "4755", "uid": 0, "gid": 0}],
         "setgid": []}
    """
    if _marker(raw, "no-gnu-find") is not None:
        raise FactUnavailable("find on this host has no -printf (GNU findutils is needed)")
    budget = (_first(raw, "budget") or "? ?").split(" ")
    seconds, entries_cap = (budget + ["?", "?"])[:2]
    entries = int(_first(raw, "entries") or 0)
    found = [
        entry
        for line in split_lines(raw)
        if line[:2] in ("R ", "N ", "Q ")
        for entry in [_scan_entry(line[0], line[2:])]
        if entry is not None
    ]
    summary = (
        f"{sum(1 for e in found if e['_bits'] & 0o002)} world-writable and "
        f"{sum(1 for e in found if e['_bits'] & 0o6000)} set-uid/set-gid entries found so far"
    )
    if _marker(raw, "stopped") == "entries":
        raise FactUnavailable(
            f"file system scan stopped by its entry budget ({entries_cap} entries, "
            f"vars.fs_scan_max_entries); {summary}"
        )
    rc = _marker(raw, "find-rc")
    if rc == "124":
        raise FactUnavailable(
            f"file system scan stopped by its time budget ({seconds} s, vars.fs_scan_max_seconds)"
            f" after {entries} entries; {summary}"
        )
    denied = int(_first(raw, "denied") or 0)
    if denied:
        root = " (needs root)" if _first(raw, "uid") != "0" else ""
        raise FactUnavailable(
            f"file system scan incomplete: {denied} directories could not be read{root}"
        )
    if rc is None:
        raise FactUnavailable("the file system scan did not finish")
    # exit 1 with no error but files that vanished during the walk (a live system) is complete
    vanished_only = rc == "1" and _first(raw, "other") == "0"
    if rc != "0" and not vanished_only:
        errors = "; ".join(unescape(e) for e in _all(raw, "E")) or "no error output"
        raise FactUnavailable(f"find failed (exit {rc}): {errors}")
    if _marker(raw, "truncated") is not None:
        raise FactUnavailable("file system scan found more than 5000 entries to report")

    nouid, nogid = set(_all(raw, "nouid")), set(_all(raw, "nogid"))
    world = [
        e
        for e in found
        if e["_bits"] & 0o002
        and e["type"] != "symlink"
        and not (e["type"] == "directory" and e["_bits"] & 0o1000)
    ]
    files = [e for e in found if e["type"] == "file"]
    return {
        "complete": True,
        "entries": entries,
        "roots": [unescape(r) for r in _all(raw, "start")],
        "pruned": [unescape(r) for r in _all(raw, "prune")],
        "world_writable": [_public(e) for e in world],
        "unowned": [_public(e) for e in found if str(e["uid"]) in nouid],
        "ungrouped": [_public(e) for e in found if str(e["gid"]) in nogid],
        "setuid": [_public(e) for e in files if e["_bits"] & 0o4000],
        "setgid": [_public(e) for e in files if e["_bits"] & 0o2000],
    }


def _public(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k != "_bits"}


# ---------------------------------------------------------------------------------- logging


def _setting(line: str) -> tuple[str, str] | None:
    """`Key=Value` of a journald-style line, or None."""
    key, sep, value = line.partition("=")
    return (key.strip(), value.strip()) if sep else None


def parse_logging(raw: str) -> dict[str, Any]:
    """Where logs are kept and whether they leave the host.

    `journald` holds the effective Storage, Compress and ForwardToSyslog (the last file read
    wins, drop-ins after journald.conf; None when unset: systemd's defaults are auto, yes, no),
    `journal_dir` whether /var/log/journal exists (Storage=auto then keeps logs on disk),
    `forwarding` the lines sending logs elsewhere (rsyslog `@host`/omfwd, syslog-ng network
    destinations, systemd-journal-upload URL), `receives` the lines making this host a log
    server, `file_create_mode` rsyslog's $FileCreateMode. Example::

        {"journald": {"storage": "persistent", "compress": None, "forward_to_syslog": None},
         "journal_dir": True, "rsyslog": True, "syslog_ng": False, "forwarding": [],
         "receives": [], "file_create_mode": "0640", "unreadable": []}
    """
    journald: dict[str, str | None] = {"storage": None, "compress": None, "forward_to_syslog": None}
    keys = {"Storage": "storage", "Compress": "compress", "ForwardToSyslog": "forward_to_syslog"}
    forwarding: list[str] = []
    receives: list[str] = []
    mode: str | None = None
    for current, written in file_lines(raw):
        line = written.strip()
        where = f"{current}: {line}"
        setting = _setting(line)
        if "/journald.conf" in current:  # journald.conf and journald.conf.d/*.conf
            if setting and setting[0] in keys:
                journald[keys[setting[0]]] = setting[1]
            continue
        if current.endswith("/journal-upload.conf"):
            if setting and setting[0] == "URL" and setting[1]:
                forwarding.append(where)
            continue
        if "FileCreateMode" in line:
            found = [w for w in line.replace('"', " ").replace("=", " ").split() if w.isdigit()]
            mode = found[0] if found else mode
        elif any(k in line for k in ("imtcp", "imudp", "InputTCPServerRun", "UDPServerRun")):
            if not line.startswith("#"):
                receives.append(where)
        elif "omfwd" in line or _rsyslog_remote(line) or _syslog_ng_remote(line):
            forwarding.append(where)
    return {
        "journald": journald,
        "journal_dir": _first(raw, "journal-dir") == "yes",
        "rsyslog": _first(raw, "rsyslogd") == "yes",
        "syslog_ng": _first(raw, "syslog-ng") == "yes",
        "forwarding": forwarding,
        "receives": receives,
        "file_create_mode": mode,
        "unreadable": [unescape(x) for x in _all(raw, "X")],
    }


def _rsyslog_remote(line: str) -> bool:
    """A legacy rsyslog action `SELECTOR @host` (UDP) or `@@host` (TCP)."""
    parts = line.split()
    return len(parts) >= 2 and parts[-1].startswith("@") and len(parts[-1]) > 2


def _syslog_ng_remote(line: str) -> bool:
    return line.lstrip().startswith(("destination", "network(", "tcp(", "udp(", "syslog(")) and (
        "network(" in line or "tcp(" in line or "udp(" in line or "syslog(" in line
    )


# --------------------------------------------------------------------------------- firewall


def _nft_input_chains(text: str) -> list[dict[str, Any]]:
    """Base chains on the input hook of `nft -j list ruleset`, with their policy and whether
    their last rule drops or rejects everything."""
    items = json.loads(text).get("nftables", [])
    chains: dict[tuple[Any, Any, Any], dict[str, Any]] = {}
    for item in items:
        chain = item.get("chain")
        if isinstance(chain, dict) and chain.get("hook") == "input":
            key = (chain.get("family"), chain.get("table"), chain.get("name"))
            chains[key] = {
                "family": chain.get("family"),
                "table": chain.get("table"),
                "name": chain.get("name"),
                "policy": chain.get("policy", "accept"),
                "rules": 0,
                "ends_in_drop": False,
            }
    for item in items:
        rule = item.get("rule")
        if not isinstance(rule, dict):
            continue
        key = (rule.get("family"), rule.get("table"), rule.get("chain"))
        if key in chains:
            exprs = [e for e in rule.get("expr", []) if "counter" not in e]
            chains[key]["rules"] += 1
            chains[key]["ends_in_drop"] = len(exprs) == 1 and (
                "drop" in exprs[0] or "reject" in exprs[0]
            )
    return list(chains.values())


def _iptables_input(lines: list[str]) -> dict[str, Any] | None:
    """The filter table's INPUT chain from iptables-save: policy, rules, final catch-all."""
    policy: str | None = None
    rules: list[str] = []
    for line in map(unescape, lines):
        if line.startswith(":INPUT "):
            policy = line.split()[1]
        elif line.startswith("-A INPUT "):
            rules.append(line)
    if policy is None:
        return None
    last = rules[-1].split() if rules else []
    return {
        "policy": policy.lower(),
        "rules": len(rules),
        "ends_in_drop": last[2:] in (["-j", "DROP"], ["-j", "REJECT"]),
    }


def parse_firewall(raw: str) -> dict[str, Any]:
    """The host firewall's input policy, from nftables (`nft -j list ruleset`) and from
    iptables-save/ip6tables-save (filter table), whichever the host has.

    `default_deny_input` is True when an input base chain drops by policy or ends in an
    unconditional drop/reject (nft), or the iptables INPUT chain does, for IPv4 and, when
    ip6tables exists, IPv6. Reading rules needs root and CAP_NET_ADMIN: without them the fact
    is unavailable. Example::

        {"nft": [{"family": "inet", "table": "filter", "name": "input", "policy": "drop",
                  "rules": 3, "ends_in_drop": False}],
         "iptables": {"policy": "accept", "rules": 0, "ends_in_drop": False},
         "ip6tables": None, "default_deny_input": True}
    """
    root = _first(raw, "uid") == "0"
    tools = {"nft": _marker(raw, "nft-rc"), "iptables": _marker(raw, "iptables-rc"),
             "ip6tables": _marker(raw, "ip6tables-rc")}  # fmt: skip
    if all(rc is None for rc in tools.values()):
        return {"nft": None, "iptables": None, "ip6tables": None, "default_deny_input": False,
                "tools": []}  # fmt: skip
    failed = [name for name, rc in tools.items() if rc not in (None, "0")]
    if failed:
        why = " (needs root and CAP_NET_ADMIN)" if not root else " (needs CAP_NET_ADMIN)"
        detail = next((unescape(v) for t, v in _tagged(raw) if t in ("N", "4", "6")), "")
        raise FactUnavailable(f"could not read the firewall rules with {failed[0]}{why}: {detail}")
    nft = _nft_input_chains("\n".join(_all(raw, "N"))) if tools["nft"] is not None else None
    ipv4 = _iptables_input(_all(raw, "4")) if tools["iptables"] is not None else None
    ipv6 = _iptables_input(_all(raw, "6")) if tools["ip6tables"] is not None else None

    def denies(chain: dict[str, Any] | None) -> bool:
        return chain is not None and (chain["policy"] == "drop" or chain["ends_in_drop"])

    nft_v4 = any(denies(c) for c in nft or [] if c["family"] in ("inet", "ip"))
    nft_v6 = any(denies(c) for c in nft or [] if c["family"] in ("inet", "ip6"))
    v4 = nft_v4 or denies(ipv4)
    v6 = nft_v6 or denies(ipv6) or tools["ip6tables"] is None and not nft
    return {
        "nft": nft,
        "iptables": ipv4,
        "ip6tables": ipv6,
        "default_deny_input": v4 and v6,
        "tools": [name for name, rc in tools.items() if rc is not None],
    }


# ----------------------------------------------------------------------------- auto_updates


def parse_auto_updates(raw: str) -> dict[str, Any]:
    """Automatic updates and repository signing.

    apt: `periodic` holds the APT::Periodic settings `apt-config dump` reports (Debian's
    unattended-upgrades package sets Update-Package-Lists and Unattended-Upgrade to "1" in
    20auto-upgrades once enabled; absent means off), `unattended_upgrades` whether its program
    is installed, `insecure_sources` the source lines marked trusted=yes or allow-insecure,
    and `insecure_options` apt options that accept unsigned repositories. dnf:
    `dnf_automatic` (apply_updates, upgrade_type). Example::

        {"manager": "apt", "periodic": {"Update-Package-Lists": "1",
         "Unattended-Upgrade": "1"}, "unattended_upgrades": True, "origins": 2,
         "insecure_sources": [], "insecure_options": [], "dnf_automatic": None}
    """
    manager = _first(raw, "manager")
    if manager is None:
        raise FactUnavailable("auto_updates section printed nothing")
    periodic: dict[str, str] = {}
    insecure: list[str] = []
    origins = 0
    for line in map(unescape, _all(raw, "A")):
        key, _, value = line.partition(" ")
        value = value.strip().rstrip(";").strip('"')
        if key.startswith("APT::Periodic::"):
            periodic[key.removeprefix("APT::Periodic::")] = value
        elif key.startswith("Unattended-Upgrade::") and value:
            origins += 1
        elif value.lower() in ("1", "true", "yes"):
            insecure.append(f"{key} {value}")
    dnf: dict[str, Any] | None = None
    if manager == "dnf":
        dnf = {"installed": _first(raw, "dnf-automatic") == "yes"}
        for line in map(unescape, _all(raw, "D")):
            key, _, value = line.partition("=")
            dnf[key.strip()] = value.strip()
    return {
        "manager": None if manager == "none" else manager,
        "periodic": periodic,
        "unattended_upgrades": _first(raw, "unattended-upgrade") == "yes",
        "origins": origins,
        "insecure_sources": [unescape(t) for t in _all(raw, "T")],
        "insecure_options": insecure,
        "dnf_automatic": dnf,
    }


# ------------------------------------------------------------------------------------- boot


def parse_boot(raw: str) -> dict[str, Any]:
    """GRUB's password protection and the kernel's audit and LSM arguments.

    `grub_configs` lists the grub.cfg/user.cfg files read; `superusers` and `password` are
    True when one of them sets superusers / a password (directive presence only: no hash is
    read), None when a config exists but could not be read (grub.cfg is root-only when
    hardened). `cmdline` holds the audit, audit_backlog_limit and LSM arguments of
    /proc/cmdline (None when unreadable). Example::

        {"grub_configs": ["/boot/grub/grub.cfg"], "superusers": True, "password": True,
         "unreadable": [], "cmdline": {"audit": "1", "audit_backlog_limit": "8192"}}
    """
    configs = [unescape(c) for c in _all(raw, "cfg")]
    unreadable = [unescape(c) for c in _all(raw, "X")]
    cmdline: dict[str, str] | None = None
    if _first(raw, "cmdline") == "read":
        cmdline = {}
        for arg in map(unescape, _all(raw, "cmd")):
            key, _, value = arg.partition("=")
            cmdline[key] = value

    def flag(tag: str) -> bool | None:
        if _all(raw, tag):
            return True
        return None if unreadable else False

    return {
        "grub_configs": configs,
        "superusers": flag("superusers") if configs or unreadable else None,
        "password": flag("password") if configs or unreadable else None,
        "unreadable": unreadable,
        "cmdline": cmdline,
    }


# --------------------------------------------------------------------------- kernel_modules


def parse_kernel_modules(raw: str) -> dict[str, Any]:
    """Loaded kernel modules, and how modprobe is told to keep rarely needed ones out.

    `disabled` maps a module to the program its `install` directive runs instead of loading
    it (/bin/false, /bin/true: never loaded), `blacklisted` lists modules not loaded by alias,
    `available` the file system/USB storage modules present under /lib/modules (None when the
    host has no module tree for its kernel, as in a container). Names use underscores, as
    /proc/modules does. Example::

        {"loaded": ["ext4", "overlay"], "disabled": {"cramfs": "/bin/false"},
         "blacklisted": ["cramfs"], "available": ["cramfs", "udf", "usb_storage"]}
    """

    def name(text: str) -> str:
        return unescape(text).replace("-", "_")

    disabled: dict[str, str] = {}
    blacklisted: list[str] = []
    for line in _all(raw, "D"):
        parts = line.split(" ")
        if parts[0] == "install" and len(parts) >= 3:
            disabled[name(parts[1])] = unescape(parts[2])
        elif parts[0] == "blacklist" and len(parts) >= 2:
            blacklisted.append(name(parts[1]))
    available = sorted({name(a) for a in _all(raw, "avail")})
    return {
        "loaded": sorted({name(m) for m in _all(raw, "loaded")}),
        "disabled": disabled,
        "blacklisted": sorted(set(blacklisted)),
        "available": available if _first(raw, "tree") == "yes" else None,
    }


# ------------------------------------------------------------------------------- auditd_conf


def parse_auditd_conf(raw: str) -> dict[str, Any]:
    """auditd's settings from /etc/audit/auditd.conf, keys and values lower-cased (auditd reads
    them without regard to case); `present` is False when the file does not exist. The file is
    root's alone (0640): unreadable, the fact is unavailable. Example::

        {"present": True, "settings": {"max_log_file": "8", "max_log_file_action": "rotate",
                                       "space_left_action": "syslog"}}
    """
    state = _first(raw, "conf")
    if state is None:
        raise FactUnavailable("auditd_conf section printed nothing")
    if state == "unreadable":
        raise FactUnavailable("/etc/audit/auditd.conf not readable (needs root)")
    settings: dict[str, str] = {}
    for line in map(unescape, _all(raw, "K")):
        key, _, value = line.partition("=")
        settings[key.strip().lower()] = value.strip().lower()
    return {"present": state == "read", "settings": settings}
