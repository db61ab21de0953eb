"""Pure parsers for the host fact sections: a snippet's stdout in, JSON-serialisable fact data out.

No parser performs I/O or evaluates anything it reads: the text comes from the audited host and
is untrusted. It arrives escaped (escaping.py): lines are split on newline only, fields on their
source's separators, and only then is a field kept decoded with `unescape`. Each snippet
prefixes its lines (`S:`, `F:`, `@rc` ...); lines without a known prefix are ignored. When the
output shows that the evidence could not be read (not root, file unreadable, tool missing), a
parser raises `FactUnavailable` or reports an explicit `None`, never data that looks compliant.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any, TypedDict

from debian.debian_support import Version

from auditor.collectors.host.escaping import split_lines, unescape

__all__ = [
    "FactUnavailable",
    "parse_accounts",
    "parse_audit",
    "parse_file_modes",
    "parse_fim",
    "parse_hardware",
    "parse_kernel_security",
    "parse_listening",
    "parse_mounts",
    "parse_os",
    "parse_packages",
    "parse_processes",
    "parse_reboot",
    "parse_runtimes",
    "parse_shadow",
    "parse_sshd_config",
    "parse_sudoers",
    "parse_sysctl",
    "parse_systemd",
    "parse_updates",
]


class FactUnavailable(Exception):
    """The raw output shows the evidence could not be read; the message is a one-line reason."""


def _tagged(raw: str) -> Iterator[tuple[str, str]]:
    """Yield (tag, value) for every `tag:value` line; lines without a colon are skipped. The
    value is still escaped."""
    for line in split_lines(raw):
        tag, sep, value = line.partition(":")
        if sep:
            yield tag, value


def file_lines(raw: str) -> Iterator[tuple[str, str]]:
    """(file, line) for each `L:` line of a section that prints `F:FILE` before the file's
    lines, both unescaped; `file` is empty for lines before any `F:`."""
    current = ""
    for tag, value in _tagged(raw):
        if tag == "F":
            current = unescape(value)
        elif tag == "L":
            yield current, unescape(value)


def _first(raw: str, tag: str) -> str | None:
    """The value of the first `tag:` line, or None."""
    for t, value in _tagged(raw):
        if t == tag:
            return value
    return None


def _all(raw: str, tag: str) -> list[str]:
    """The values of every `tag:` line, in order."""
    return [value for t, value in _tagged(raw) if t == tag]


def _marker(raw: str, name: str) -> str | None:
    """The argument of an `@name arg` marker line ("" when it has none), or None when absent."""
    mark = "@" + name
    if mark not in raw:  # most output has none of a marker: no need to look at each line
        return None
    for line in split_lines(raw):
        if line == mark:
            return ""
        if line.startswith(mark + " "):
            return line[len(mark) + 1 :]
    return None


def _int_or_none(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None


def _natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key comparing digit runs as numbers ("6.1.0-9" < "6.1.0-18")."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part) for part in re.findall(r"\d+|\D+", text)
    )


# --------------------------------------------------------------------------------------- os


class OsFact(TypedDict):
    """Shape of `host.os`."""

    id: str | None
    id_like: list[str]
    version_id: str | None
    name: str | None
    pretty_name: str | None
    variant_id: str | None
    kernel: str | None
    arch: str | None
    hostname: str | None


_OSR_ESCAPES = re.compile(r"\\([\\$\"`])")


def _os_release_value(value: str) -> str:
    """Unquote an os-release value the way os-release(5) describes, without a shell."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        inner = value[1:-1]
        return _OSR_ESCAPES.sub(r"\1", inner) if value[0] == '"' else inner
    return _OSR_ESCAPES.sub(r"\1", value)


def parse_os(raw: str) -> OsFact:
    """Distribution identity from /etc/os-release plus `uname -r/-m/-n`.

    Absent os-release keys are None (os-release(5) would default ID to "linux"; checks state
    such defaults themselves). Example::

        {"id": "debian", "id_like": [], "version_id": "12", "name": "Debian GNU/Linux",
         "pretty_name": "Debian GNU/Linux 12 (bookworm)", "variant_id": None,
         "kernel": "6.1.0-18-amd64", "arch": "x86_64", "hostname": "node1"}
    """
    fields: dict[str, str] = {}
    for value in _all(raw, "osr"):
        line = value.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, val = line.partition("=")
        key = key.strip()
        if re.fullmatch(r"[A-Z0-9_]+", key):
            fields[key] = _os_release_value(unescape(val))

    def get(key: str) -> str | None:
        return fields.get(key)

    def uname(tag: str) -> str | None:
        value = _first(raw, tag)
        return unescape(value.strip()) or None if value is not None else None

    return {
        "id": get("ID"),
        "id_like": (get("ID_LIKE") or "").split(),
        "version_id": get("VERSION_ID"),
        "name": get("NAME"),
        "pretty_name": get("PRETTY_NAME"),
        "variant_id": get("VARIANT_ID"),
        "kernel": uname("kernel"),
        "arch": uname("arch"),
        "hostname": uname("hostname"),
    }


# ------------------------------------------------------------------------------ sshd_config

# Keywords sshd accumulates (sshd -T prints one line per value); every other keyword is a string
# and the first value wins, as in sshd.
_SSHD_LIST_KEYS = frozenset(
    {
        "port",
        "listenaddress",
        "hostkey",
        "hostcertificate",
        "subsystem",
        "allowusers",
        "denyusers",
        "allowgroups",
        "denygroups",
        "acceptenv",
    }
)
# Of those, the ones whose every word is its own entry (`AllowUsers a b` == two lines in -T).
_SSHD_WORD_KEYS = frozenset({"allowusers", "denyusers", "allowgroups", "denygroups", "acceptenv"})
# Deprecated spellings sshd maps onto the current keyword (sshd -T prints the current one).
_SSHD_ALIASES = {
    "challengeresponseauthentication": "kbdinteractiveauthentication",
    "skeyauthentication": "kbdinteractiveauthentication",
    "pubkeyacceptedkeytypes": "pubkeyacceptedalgorithms",
    "hostbasedacceptedkeytypes": "hostbasedacceptedalgorithms",
}
# Enumerated values sshd compares case-insensitively; normalised to lower case so that checks
# compare against one spelling (paths, user names and the like keep their case).
_SSHD_ENUM_VALUES = frozenset(
    {
        "yes",
        "no",
        "without-password",
        "prohibit-password",
        "forced-commands-only",
        "all",
        "local",
        "remote",
        "none",
        "any",
        "ask",
        "sandbox",
        "delayed",
    }
)


def _sshd_tokens(line: str) -> list[str]:
    """Split a config line like sshd's argv_split: quotes group, a word starting '#' ends it."""
    tokens: list[str] = []
    current: list[str] = []
    quote = ""
    in_word = False
    i = 0
    while i < len(line):
        ch = line[i]
        if quote:
            if ch == quote:
                quote = ""
            elif ch == "\\" and i + 1 < len(line) and line[i + 1] in (quote, "\\"):
                i += 1
                current.append(line[i])
            else:
                current.append(ch)
        elif ch in " \t\r":
            if in_word:
                tokens.append("".join(current))
                current, in_word = [], False
        elif ch == "#" and not in_word:
            break
        elif ch in "\"'":
            quote, in_word = ch, True
        elif ch == "\\" and i + 1 < len(line):
            i += 1
            current.append(line[i])
            in_word = True
        else:
            current.append(ch)
            in_word = True
        i += 1
    if in_word:
        tokens.append("".join(current))
    return tokens


def _sshd_keyword_args(line: str) -> tuple[str, list[str]] | None:
    """(lower-cased keyword, arguments) of a config line, or None for blank/comment lines."""
    tokens = _sshd_tokens(line)
    if not tokens:
        return None
    first = tokens[0]
    if "=" in first:  # Keyword=value
        keyword, _, rest = first.partition("=")
        tokens = [keyword] + ([rest] if rest else []) + tokens[1:]
    keyword = tokens[0].lower()
    args = tokens[1:]
    if args and args[0] == "=":  # Keyword = value
        args = args[1:]
    elif args and args[0].startswith("="):  # Keyword =value
        args = [args[0][1:]] + args[1:]
    return _SSHD_ALIASES.get(keyword, keyword), args


def _sshd_store(settings: dict[str, Any], keyword: str, args: list[str]) -> None:
    if keyword in _SSHD_LIST_KEYS:
        entries = args if keyword in _SSHD_WORD_KEYS else [" ".join(args)]
        settings.setdefault(keyword, []).extend(entries)
        return
    if keyword in settings:
        return
    value = " ".join(args)
    settings[keyword] = value.lower() if value.lower() in _SSHD_ENUM_VALUES else value


def parse_sshd_config(raw: str) -> dict[str, Any]:
    """Effective sshd settings: `sshd -T` when it ran (root), else the config files.

    Keys are lower-cased keywords. `port`, `listenaddress`, `hostkey`, `hostcertificate`,
    `subsystem`, `allowusers`, `denyusers`, `allowgroups`, `denygroups` and `acceptenv` are lists
    (sshd accumulates them); every other keyword is a string and, in the files, the first value
    wins as in sshd. From the files only what is written appears (no defaults: checks state the
    default, e.g. `permitrootlogin` defaults to `prohibit-password`); `sshd -T` prints every
    setting and spells `prohibit-password` as `without-password`. `matches` lists the `Match`
    blocks read from the files (sshd -T does not show them). `{"installed": False}` when there is
    no sshd binary. Example::

        {"installed": True, "source": "sshd -T",
         "settings": {"permitrootlogin": "no", "port": ["22"], "usepam": "yes", ...},
         "matches": [{"criteria": "User backup", "settings": {"permittty": "no"}}],
         "files": ["/etc/ssh/sshd_config", "/etc/ssh/sshd_config.d/50-local.conf"],
         "sshd_t_error": None}

    Raises FactUnavailable when `sshd -T` failed and a config file in the Include chain is
    missing or unreadable (the settings it holds would be silently absent).
    """
    if _first(raw, "sshd") == "absent":
        return {"installed": False}
    t_rc = _first(raw, "T-rc")
    errors = (unescape(line).strip() for line in _all(raw, "T-err"))
    t_error = "; ".join(line for line in errors if line) or None

    global_settings: dict[str, Any] = {}
    matches: list[dict[str, Any]] = []
    files: list[str] = []
    unreadable: list[str] = []
    missing: list[str] = []
    too_deep: list[str] = []
    current: dict[str, Any] = global_settings
    stack: list[dict[str, Any]] = []
    for tag, value in _tagged(raw):
        if tag == "F":
            files.append(unescape(value))
            stack.append(current)
        elif tag == "E":
            # sshd restores the Match state at the end of an included file
            current = stack.pop() if stack else global_settings
        elif tag == "X":
            unreadable.append(unescape(value))
        elif tag == "N":
            missing.append(unescape(value))
        elif tag == "D":
            too_deep.append(unescape(value))
        elif tag == "L":
            # sshd's own tokenizer, over the line as sshd reads it: it splits on space and tab
            parsed = _sshd_keyword_args(unescape(value))
            if parsed is None:
                continue
            keyword, args = parsed
            if keyword == "include":
                continue
            if keyword == "match":
                block: dict[str, Any] = {"criteria": " ".join(args), "settings": {}}
                matches.append(block)
                current = block["settings"]
                continue
            _sshd_store(current, keyword, args)

    if t_rc == "0":
        settings: dict[str, Any] = {}
        for line in _all(raw, "T"):
            parts = line.split(None, 1)
            if not parts:
                continue
            keyword = unescape(parts[0]).lower()
            value = unescape(parts[1].strip()) if len(parts) > 1 else ""
            if keyword in _SSHD_LIST_KEYS:
                settings.setdefault(keyword, []).append(value)
            elif keyword not in settings:
                settings[keyword] = value
        source = "sshd -T"
    else:
        main_missing = "/etc/ssh/sshd_config" in missing
        problems = [f"{p} not readable" for p in unreadable]
        problems += [f"{p} included more than 16 levels deep" for p in too_deep]
        if main_missing:
            problems.insert(0, "/etc/ssh/sshd_config does not exist")
        if problems:
            reason = "; ".join(problems)
            why = f" and sshd -T failed: {t_error}" if t_error else ""
            raise FactUnavailable(f"sshd configuration incomplete: {reason}{why}")
        settings = global_settings
        source = "files"
    return {
        "installed": True,
        "source": source,
        "settings": settings,
        "matches": matches,
        "files": files,
        "sshd_t_error": None if t_rc == "0" else t_error,
    }


# ----------------------------------------------------------------------------------- sysctl


# Files under /proc/sys that are counters the kernel keeps, not settings: they change from
# one read to the next (uuid is new on every read), so keeping them would make the fact, and
# the evidence stored, differ between two audits of a host that did not change.
VOLATILE_SYSCTLS = frozenset(
    {
        "fs.aio-nr",
        "fs.dentry-state",
        "fs.file-nr",
        "fs.inode-nr",
        "fs.inode-state",
        "fs.quota.allocated_dquots",
        "fs.quota.cache_hits",
        "fs.quota.drops",
        "fs.quota.free_dquots",
        "fs.quota.lookups",
        "fs.quota.reads",
        "fs.quota.syncs",
        "fs.quota.writes",
        "kernel.hung_task_detect_count",
        "kernel.ns_last_pid",
        "kernel.pty.nr",
        "kernel.random.entropy_avail",
        "kernel.random.uuid",
        "net.netfilter.nf_conntrack_count",
    }
)


def parse_sysctl(raw: str) -> dict[str, str]:
    """Every kernel parameter as a string, from the files under /proc/sys (what `sysctl -a`
    reads): the path becomes the dotted name, as sysctl(8) names it. The kernel's counters
    (VOLATILE_SYSCTLS) are left out.

    Whitespace inside values is normalised to single spaces; parameters the user may not read
    (some need root) are absent, never guessed. Example::

        {"kernel.randomize_va_space": "2", "net.ipv4.tcp_rmem": "4096 131072 6291456", ...}
    """
    if _marker(raw, "unavailable") is not None:
        raise FactUnavailable("/proc/sys is not available")
    result: dict[str, str] = {}
    for line in split_lines(raw):
        # "P:/proc/sys/net/ipv4/ip_forward:1"
        if not line.startswith("P:/proc/sys/"):
            continue
        path, sep, val = line[12:].partition(":")
        if not sep:
            continue
        path = unescape(path)
        key = path.replace("/", ".")
        if "." in path:  # a dot inside a component becomes "/" (sysctl(8)): eth0.100
            key = ".".join(component.replace(".", "/") for component in path.split("/"))
        if key in VOLATILE_SYSCTLS:
            continue
        val = unescape(" ".join(val.split()))
        result[key] = result[key] + "\n" + val if key in result else val
    if not result:
        raise FactUnavailable("no kernel parameter could be read under /proc/sys")
    return result


# ----------------------------------------------------------------------------------- mounts


class Mount(TypedDict):
    """One entry of `host.mounts`."""

    source: str
    target: str
    fstype: str
    options: list[str]


_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape_mount(field: str) -> str:
    """A field of /proc/self/mounts, split from its line before this: the probe's escape
    undone, then the kernel's own (it writes space, tab, newline and backslash as `\\ooo`)."""
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), unescape(field))


def parse_mounts(raw: str) -> list[Mount]:
    """Mounted filesystems from /proc/self/mounts, with `\\040`-style escapes decoded once
    each line is split into its fields (a source name holding a vertical tab or any other
    whitespace but the space is one field).

    Example::

        [{"source": "/dev/sda1", "target": "/", "fstype": "ext4",
          "options": ["rw", "relatime", "errors=remount-ro"]}, ...]
    """
    if _first(raw, "file") is None:
        raise FactUnavailable(
            "no readable mount table (/proc/self/mounts, /proc/mounts, /etc/mtab)"
        )
    mounts: list[Mount] = []
    for value in _all(raw, "M"):
        parts = value.split()
        if len(parts) < 4:
            continue
        mounts.append(
            {
                "source": _unescape_mount(parts[0]),
                "target": _unescape_mount(parts[1]),
                "fstype": _unescape_mount(parts[2]),
                "options": [_unescape_mount(o) for o in parts[3].split(",")],
            }
        )
    return mounts


# ------------------------------------------------------------------------------- file_modes

_FILE_TYPES = {
    0o140000: "socket",
    0o120000: "symlink",
    0o100000: "file",
    0o060000: "block-device",
    0o040000: "directory",
    0o020000: "char-device",
    0o010000: "fifo",
}


def _stat_fields(text: str) -> dict[str, Any] | None:
    """Decode `stat -c '%f %u %g %U %G'` (raw hex mode, ids, names; UNKNOWN = no name)."""
    parts = text.split()
    if len(parts) != 5:
        return None
    try:
        raw_mode = int(parts[0], 16)
        uid, gid = int(parts[1]), int(parts[2])
    except ValueError:
        return None
    kind = _FILE_TYPES.get(raw_mode & 0o170000, "other")
    return {
        "type": kind if kind in ("file", "directory", "socket", "symlink") else "other",
        "mode": f"{raw_mode & 0o7777:04o}",
        "uid": uid,
        "gid": gid,
        "owner": None if parts[3] == "UNKNOWN" else unescape(parts[3]),
        "group": None if parts[4] == "UNKNOWN" else unescape(parts[4]),
    }


_STAT_KEYS = ("type", "mode", "uid", "gid", "owner", "group")


def _stat_error_means_absent(message: str) -> bool:
    return message.rstrip().endswith(("No such file or directory", "Not a directory"))


def parse_file_modes(raw: str) -> list[dict[str, Any]]:
    """Type, mode and ownership of each path in AUDITOR_PATHS, in the order given.

    `mode` is the 4-digit octal permission string (set-id and sticky bits included); `owner` and
    `group` are None when the id has no name. Every entry has every key (None when it does not
    apply). A symlink is described itself (`type` "symlink") with its `link` text and the
    `resolved` target's fields (None when dangling). When the path cannot be examined (e.g. a
    parent directory is not searchable) `exists` is None and `error` says why. Example::

        [{"path": "/var/run/docker.sock", "exists": True, "type": "socket", "mode": "0660",
          "uid": 0, "gid": 999, "owner": "root", "group": "docker", "link": None,
          "resolved": None, "error": None},
         {"path": "/etc/sysconfig/docker", "exists": False, "type": None, "mode": None,
          "uid": None, "gid": None, "owner": None, "group": None, "link": None,
          "resolved": None, "error": None}]
    """
    if _marker(raw, "no-paths-variable") is not None:
        raise FactUnavailable("the runner did not define AUDITOR_PATHS")
    if _marker(raw, "no-stat") is not None:
        raise FactUnavailable("stat is not installed on the host")
    entries: list[dict[str, Any]] = []
    entry: dict[str, Any] | None = None
    answered: set[str] = set()  # prefixes already seen for the current path: first one wins
    for tag, value in _tagged(raw):
        if tag == "P":
            entry = {
                "path": unescape(value),
                "exists": None,
                **dict.fromkeys(_STAT_KEYS),
                "link": None,
                "resolved": None,
                "error": "no stat output",
            }
            entries.append(entry)
            answered = set()
            continue
        if entry is None or tag in answered:
            continue
        answered.add(tag)
        if tag == "S" and "E" not in answered:
            fields = _stat_fields(value)
            if fields is None:
                entry["error"] = f"unexpected stat output: {unescape(value)}"
            else:
                entry.update(exists=True, error=None, **fields)
        elif tag == "E" and "S" not in answered:
            if _stat_error_means_absent(value):
                entry.update(exists=False, error=None)
            else:
                entry["error"] = unescape(value.strip())
        elif tag == "L" and entry["type"] == "symlink":
            entry["link"] = unescape(value)
        elif tag == "T" and entry["type"] == "symlink":
            entry["resolved"] = _stat_fields(value)
    return entries


# --------------------------------------------------------------------------------- packages


def parse_packages(raw: str) -> dict[str, Any]:
    """Installed packages from dpkg (status "install ok installed" only) or rpm.

    `packages` maps name to version (dpkg: `[epoch:]upstream-revision`; rpm:
    `[epoch:]version-release`). A name installed in several versions or architectures (rpm
    kernels, multi-arch libraries) keeps the highest by natural order in `packages` and all of
    them, as listed, in `duplicates`. `manager` is None when neither dpkg nor rpm exists. Example::

        {"manager": "dpkg", "packages": {"openssh-server": "1:9.2p1-2+deb12u5", ...},
         "duplicates": {}}
    """
    manager = _first(raw, "manager")
    if manager is None:
        raise FactUnavailable("package section printed nothing")
    if manager == "none":
        return {"manager": None, "packages": {}, "duplicates": {}}
    rc = _marker(raw, "rc")
    tag = "D" if manager == "dpkg" else "R"
    lines = _all(raw, tag)
    if rc not in (None, "0"):
        detail = next((unescape(line.strip()) for line in lines if line.strip()), "")
        raise FactUnavailable(f"{manager} query failed (exit {rc}): {detail}")
    packages: dict[str, str] = {}
    seen: dict[str, list[str]] = {}
    for line in lines:
        if manager == "dpkg":
            parts = line.split(" ", 3)
            if len(parts) < 4 or parts[3] != "install ok installed":
                continue
        else:
            parts = line.split()
            if len(parts) < 2:
                continue
        seen.setdefault(unescape(parts[0]), []).append(unescape(parts[1]))
    for name, versions in seen.items():
        packages[name] = versions[0] if len(versions) == 1 else max(versions, key=_natural_key)
    duplicates = {name: versions for name, versions in seen.items() if len(versions) > 1}
    return {"manager": manager, "packages": packages, "duplicates": duplicates}


# ---------------------------------------------------------------------------------- updates


def _cache_age(raw: str) -> float | None:
    now = _int_or_none(_first(raw, "now"))
    mtimes = [_int_or_none(v.split(" ", 1)[0]) for v in _all(raw, "mtime")]
    known = [m for m in mtimes if m is not None]
    if now is None or not known:
        return None
    return round(max(0, now - max(known)) / 86400, 2)


_RPM_ARCHES = (".noarch", ".x86_64", ".aarch64", ".i686", ".ppc64le", ".s390x", ".src")


def _dnf_lines(lines: list[str]) -> list[tuple[str, str]]:
    """(name, version) of `dnf check-update` package lines, up to "Obsoleting Packages"."""
    result: list[tuple[str, str]] = []
    for line in lines:
        if line.startswith("Obsoleting"):
            break
        parts = line.split()
        if len(parts) != 3 or line[0].isspace():
            continue
        name_arch, version = parts[0], parts[1]
        name = name_arch
        for arch in _RPM_ARCHES:
            if name_arch.endswith(arch):
                name = name_arch[: -len(arch)]
                break
        else:
            if "." in name_arch:
                name = name_arch.rsplit(".", 1)[0]
        result.append((unescape(name), unescape(version)))
    return result


@lru_cache(maxsize=8192)
def _newer(version: str, than: str) -> bool:
    """Whether Debian `version` sorts after `than`. The hosts of a fleet offer and hold the
    same versions, and each comparison costs tens of microseconds, so answers are kept."""
    return Version(version) > Version(than)


def parse_updates(raw: str) -> dict[str, Any]:
    """Pending updates as seen by the local package cache (it is never refreshed).

    Debian family: the versions offered by the `*-security` archives' package lists (read with
    `apt-helper cat-file`, no solver, no cache written) that are newer than the installed
    versions; so `pending` holds security updates only. RHEL family: `dnf -C check-update`,
    security from `dnf -C check-update --security`, root only and only when the profile allows
    it (`vars.host_probe_dnf`: dnf appends to its own logs and lock files even in cache-only
    mode). `cache_age_days` is the age of the newest package lists / repository metadata. With
    no lists or metadata at all the tools cannot tell, so that raises FactUnavailable. Example::

        {"manager": "apt", "cache_age_days": 0.5,
         "pending": [{"name": "libgcrypt20", "version": "1.10.1-3+deb12u1",
                      "installed": "1.10.1-3", "security": True}]}
    """
    manager = _first(raw, "manager")
    if manager is None:
        raise FactUnavailable("updates section printed nothing")
    if manager == "none":
        return {"manager": None, "pending": [], "cache_age_days": None}
    age = _cache_age(raw)
    pending: list[dict[str, Any]] = []
    if _marker(raw, "dnf-not-allowed") is not None:
        raise FactUnavailable(
            f"{manager} is not run: it writes its logs and lock files even with -C "
            "(set vars.host_probe_dnf to true to allow it)"
        )
    if _marker(raw, "not-root") is not None:
        raise FactUnavailable(f"{manager} -C needs root (as another user it creates a cache)")
    if manager == "apt" and _first(raw, "lists") == "0":
        raise FactUnavailable(
            "apt has no package lists (apt-get update never ran): updates unknown"
        )
    if manager != "apt" and not _all(raw, "mtime"):
        raise FactUnavailable(
            f"no repository metadata in the {manager} cache, so `{manager} -C` cannot tell "
            "pending updates (the audit never refreshes it)"
        )
    if manager == "apt":
        if _marker(raw, "no-apt-helper") is not None:
            raise FactUnavailable("/usr/lib/apt/apt-helper is missing: cannot read the lists")
        if not _all(raw, "S"):
            raise FactUnavailable("no package lists of a security archive in /var/lib/apt/lists")
        newest: dict[str, tuple[str, str]] = {}
        for line in _all(raw, "C"):
            parts = line.split()
            if len(parts) != 3:
                continue
            name, installed, offered = (unescape(part) for part in parts)
            if not _newer(offered, installed):
                continue
            if name not in newest or _newer(offered, newest[name][1]):
                newest[name] = (installed, offered)
        for name, (installed, offered) in sorted(newest.items()):
            pending.append(
                {"name": name, "version": offered, "installed": installed, "security": True}
            )
        return {"manager": manager, "pending": pending, "cache_age_days": age}
    # dnf / yum: exit 0 = nothing pending, 100 = updates listed, anything else = error
    rc = _marker(raw, "rc")
    src = _marker(raw, "src")
    lines = _all(raw, "U")
    if rc not in ("0", "100"):
        detail = "; ".join(unescape(line.strip()) for line in lines if line.strip())
        raise FactUnavailable(f"{manager} -C check-update failed (exit {rc}): {detail}")
    security: set[tuple[str, str]] | None = None
    if src in ("0", "100"):
        security = set(_dnf_lines(_all(raw, "Z")))
    for name, version in _dnf_lines(lines):
        pending.append(
            {
                "name": name,
                "version": version,
                "installed": None,
                "security": None if security is None else (name, version) in security,
            }
        )
    return {"manager": manager, "pending": pending, "cache_age_days": age}


# ---------------------------------------------------------------------------------- systemd


def parse_systemd(raw: str) -> dict[str, Any]:
    """systemd service, socket and timer units with load/active/sub and enablement state.

    `available` is False when systemctl is missing or systemd is not PID 1 (containers, this
    kind of build machine); then `units` is empty. A unit file that is not loaded has None for
    `load`, `active` and `sub`; a loaded unit without a unit file has None for `enabled`.
    Example::

        {"available": True, "units": {"ssh.service": {"load": "loaded", "active": "active",
         "sub": "running", "enabled": "enabled"}, ...}}
    """
    if _marker(raw, "no-systemctl") is not None:
        return {"available": False, "reason": "systemctl not installed", "units": {}}
    if _marker(raw, "not-booted") is not None:
        return {"available": False, "reason": "systemd is not the init system", "units": {}}
    units_rc = _marker(raw, "units-rc")
    if units_rc is None:
        raise FactUnavailable("systemd section printed nothing")
    if units_rc != "0":
        detail = "; ".join(unescape(line) for line in _all(raw, "U"))
        raise FactUnavailable(f"systemctl list-units failed (exit {units_rc}): {detail}")
    units: dict[str, dict[str, str | None]] = {}
    for line in _all(raw, "U"):
        parts = [unescape(part) for part in line.split()]
        while parts and parts[0] in ("●", "*", "×", "○"):
            parts = parts[1:]
        if len(parts) < 4:
            continue
        units[parts[0]] = {"load": parts[1], "active": parts[2], "sub": parts[3], "enabled": None}
    if _marker(raw, "files-rc") == "0":
        for line in _all(raw, "F"):
            parts = [unescape(part) for part in line.split()]
            if len(parts) < 2:
                continue
            unit = units.setdefault(
                parts[0], {"load": None, "active": None, "sub": None, "enabled": None}
            )
            unit["enabled"] = parts[1]
    return {"available": True, "units": units}


# ------------------------------------------------------------------------------------ audit


def _rule_lines(lines: list[str]) -> list[str]:
    """Rule lines as auditctl reads a rules file: leading blanks skipped, then blank lines and
    comments; each line is a rule of its own, whatever it holds."""
    rules = (line.strip(" \t") for line in lines)
    return [unescape(rule) for rule in rules if rule and not rule.startswith("#")]


def parse_audit(raw: str) -> dict[str, Any]:
    """Kernel audit state (`auditctl -s`, `-l`: root only) and the audit rules files.

    `enabled` is 0, 1 or 2 (2 = locked) and `rules` the loaded rules; both are None when
    auditctl is missing or could not ask the kernel (not root). `rules_files` holds the rule
    lines (comments dropped) of /etc/audit/rules.d/*.rules and /etc/audit/audit.rules, None
    when /etc/audit or one of them is not readable. Example::

        {"auditctl": True, "enabled": 1, "rules": ["-w /usr/bin/dockerd -k docker"],
         "rules_files": ["-D", "-b 8192", "-w /usr/bin/dockerd -k docker"]}
    """
    auditctl = _first(raw, "auditctl") == "present"
    enabled: int | None = None
    rules: list[str] | None = None
    if auditctl and _marker(raw, "s-rc") == "0":
        for line in _all(raw, "S"):
            parts = line.split()
            if len(parts) == 2 and parts[0] == "enabled":
                enabled = _int_or_none(parts[1])
    if auditctl and _marker(raw, "l-rc") == "0":
        loaded = [unescape(line.strip(" \t")) for line in _all(raw, "L") if line.strip(" \t")]
        rules = [] if loaded == ["No rules"] else loaded
    unreadable = _all(raw, "X")
    rules_files: list[str] | None = None
    if not unreadable:
        rules_files = _rule_lines(_all(raw, "R"))
    return {"auditctl": auditctl, "enabled": enabled, "rules": rules, "rules_files": rules_files}


# --------------------------------------------------------------------------------- accounts


def parse_accounts(raw: str) -> dict[str, Any]:
    """Local users and groups from /etc/passwd and /etc/group (not LDAP/SSSD users).

    `password_state` classifies the passwd password field without keeping it: "shadow" (x),
    "empty" (no password at all), "locked" (! or *), "hash" (a hash kept in /etc/passwd).
    `groups` maps each group to its members: the users listed in /etc/group followed by the
    users whose primary group it is (both hold the group's rights); `group_ids` gives the GIDs.
    Example::

        {"users": [{"name": "root", "uid": 0, "gid": 0, "home": "/root",
                    "shell": "/bin/bash", "password_state": "shadow"}],
         "groups": {"docker": ["alice"]}, "group_ids": {"docker": 999}, "uid0": ["root"]}
    """
    unreadable = _all(raw, "X")
    if unreadable:
        raise FactUnavailable(f"{', '.join(unreadable)} not readable")
    users: list[dict[str, Any]] = []
    for value in _all(raw, "U"):
        parts = value.split(":")
        if len(parts) != 6 or not parts[0] or parts[0].startswith(("+", "-", "#")):
            continue
        name, password, uid, gid, home, shell = parts
        uid_n, gid_n = _int_or_none(uid), _int_or_none(gid)
        if uid_n is None or gid_n is None:
            continue
        users.append(
            {
                "name": unescape(name),
                "uid": uid_n,
                "gid": gid_n,
                "home": unescape(home),
                "shell": unescape(shell),
                "password_state": password,
            }
        )
    groups: dict[str, list[str]] = {}
    group_ids: dict[str, int] = {}
    names_by_gid: dict[int, str] = {}
    for value in _all(raw, "G"):
        parts = value.split(":")
        if len(parts) != 3 or not parts[0] or parts[0].startswith(("+", "-", "#")):
            continue
        name, gid, members = unescape(parts[0]), parts[1], parts[2]
        gid_n = _int_or_none(gid)
        if gid_n is None or name in groups:
            continue
        groups[name] = [unescape(m) for m in members.split(",") if m]
        group_ids[name] = gid_n
        names_by_gid.setdefault(gid_n, name)
    for user in users:
        group = names_by_gid.get(user["gid"])
        if group is not None and user["name"] not in groups[group]:
            groups[group].append(user["name"])
    return {
        "users": users,
        "groups": groups,
        "group_ids": group_ids,
        "uid0": [u["name"] for u in users if u["uid"] == 0],
    }


# ----------------------------------------------------------------------------------- shadow


def parse_shadow(raw: str) -> dict[str, list[str]]:
    """Which accounts have an empty, locked or set password; the snippet never prints hashes.

    Locked = the field starts with "!" or "*" (includes "!!" and "!<hash>"). Example::

        {"empty_password": ["bob"], "locked": ["daemon", "bin"], "password_set": ["root"]}
    """
    if _first(raw, "X") is not None:
        raise FactUnavailable("/etc/shadow not readable (needs root)")
    if _first(raw, "N") is not None:
        raise FactUnavailable("/etc/shadow does not exist (see host.accounts for passwd fields)")
    result: dict[str, list[str]] = {"empty_password": [], "locked": [], "password_set": []}
    keys = {"empty": "empty_password", "locked": "locked", "set": "password_set"}
    for value in _all(raw, "H"):
        name, _, kind = value.rpartition(" ")
        if name and kind in keys:
            result[keys[kind]].append(unescape(name))
    return result


# ---------------------------------------------------------------------------------- sudoers

_SUDO_INCLUDE = re.compile(r"^[#@]include(dir)?\s")
_ESCAPED_BACKSLASH = "\\134"


def parse_sudoers(raw: str) -> dict[str, Any]:
    """sudoers rules from /etc/sudoers and the files it includes (readable by root only).

    Comments and blank lines are dropped, continuation lines joined. `rules` holds every other
    line with its file, `nopasswd` the rules carrying a NOPASSWD tag, `authenticate_disabled`
    the `Defaults ... !authenticate` lines, `includes` the include directives. `present` is False
    when /etc/sudoers does not exist (sudo not installed). Example::

        {"present": True, "files": ["/etc/sudoers", "/etc/sudoers.d/ops"],
         "includes": ["@includedir /etc/sudoers.d"],
         "rules": [{"file": "/etc/sudoers", "line": "root ALL=(ALL:ALL) ALL"}, ...],
         "nopasswd": [{"file": "/etc/sudoers.d/ops", "line": "deploy ALL=(ALL) NOPASSWD: ALL"}],
         "authenticate_disabled": []}
    """
    missing = [unescape(path) for path in _all(raw, "N")]
    if "/etc/sudoers" in missing:
        return {
            "present": False,
            "files": [],
            "includes": [],
            "rules": [],
            "nopasswd": [],
            "authenticate_disabled": [],
        }
    unreadable = _all(raw, "X")
    if unreadable:
        raise FactUnavailable(f"{', '.join(unreadable)} not readable (needs root)")
    too_deep = _all(raw, "D")
    if too_deep:
        raise FactUnavailable(f"sudoers includes nested too deeply at {too_deep[0]}")
    if not _all(raw, "F"):
        raise FactUnavailable("sudoers section printed nothing")
    files: list[str] = []
    includes: list[str] = []
    rules: list[dict[str, str]] = []
    stack: list[str] = []
    pending: dict[str, str] = {}  # file -> continued line (escaped, as it came)
    for tag, value in _tagged(raw):
        if tag == "F":
            files.append(unescape(value))
            stack.append(files[-1])
            continue
        if tag == "E":
            if stack:
                stack.pop()
            continue
        if tag != "L" or not stack:
            continue
        file = stack[-1]
        line = pending.pop(file, "") + value
        if line.endswith(_ESCAPED_BACKSLASH):  # a backslash before the newline continues it
            pending[file] = line[: -len(_ESCAPED_BACKSLASH)] + " "
            continue
        text = " ".join(line.split())  # escaped: only spaces and tabs are blanks in it
        if not text:
            continue
        if _SUDO_INCLUDE.match(text):
            includes.append(unescape(text))
            continue
        if text.startswith("#"):
            continue
        rules.append({"file": file, "line": unescape(text)})
    nopasswd = [r for r in rules if re.search(r"\bNOPASSWD\s*:", r["line"])]
    no_auth = [
        r for r in rules if r["line"].startswith("Defaults") and "!authenticate" in r["line"]
    ]
    return {
        "present": True,
        "files": files,
        "includes": includes,
        "rules": rules,
        "nopasswd": nopasswd,
        "authenticate_disabled": no_auth,
    }


# -------------------------------------------------------------------------------- listening


# a line of `grep -H` over /proc/PID files: the file names the process, on every line
_PROC_PATH = re.compile(r"^/proc/(\d+)/(comm|status|cgroup):(.*)$")


def _hex_ipv4(text: str) -> str:
    value = bytes.fromhex(text)[::-1]
    return ".".join(str(b) for b in value)


def _hex_ipv6(text: str) -> str:
    import ipaddress

    raw = b"".join(bytes.fromhex(text[i : i + 8])[::-1] for i in range(0, 32, 8))
    return str(ipaddress.IPv6Address(raw))


def _owners(raw: str) -> tuple[dict[str, int], dict[int, str]]:
    """Socket inode -> the first process holding it (`I:pid inode`), and pid -> process name
    (`c:/proc/PID/comm:name`; grep names the file on each line, so the lines of a name holding
    a newline are joined back)."""
    owner: dict[str, int] = {}
    for value in _all(raw, "I"):
        owner_pid, _, inode = value.partition(" ")
        if owner_pid.isdigit() and inode.isdigit():
            owner.setdefault(inode, int(owner_pid))
    names: dict[int, str] = {}
    for value in _all(raw, "c"):
        m = _PROC_PATH.match(value)
        if m and m.group(2) == "comm":
            pid = int(m.group(1))
            names[pid] = m.group(3) if pid not in names else f"{names[pid]}\\012{m.group(3)}"
    return owner, {pid: unescape(name) for pid, name in names.items()}


def parse_listening(raw: str) -> list[dict[str, Any]]:
    """Listening TCP sockets and bound UDP sockets, from the kernel's tables in /proc/net.

    `process`/`pid` are the first process holding the socket (its /proc/PID/fd links, its
    /proc/PID/comm); None when unknown: another user's process seen without root, or a host
    without GNU find. Example::

        [{"proto": "tcp", "address": "0.0.0.0", "port": 22, "process": "sshd", "pid": 612}]
    """
    source = _first(raw, "source")
    if source is None:
        raise FactUnavailable("listening section printed nothing")
    owner, names = _owners(raw)
    sockets: list[dict[str, Any]] = []
    for line in _all(raw, "N"):
        parts = line.split()
        if len(parts) < 5:
            continue
        table, local, state = parts[0], parts[2], parts[4]
        proto = "tcp" if table.startswith("tcp") else "udp"
        if (proto == "tcp" and state != "0A") or (proto == "udp" and state != "07"):
            continue
        hex_addr, _, hex_port = local.partition(":")
        try:
            address = _hex_ipv6(hex_addr) if len(hex_addr) == 32 else _hex_ipv4(hex_addr)
            port = int(hex_port, 16)
        except ValueError:
            continue
        pid = owner.get(parts[10]) if len(parts) > 10 else None
        sockets.append(
            {
                "proto": proto,
                "address": address,
                "port": port,
                "process": names.get(pid) if pid is not None else None,
                "pid": pid,
            }
        )
    return sockets


# -------------------------------------------------------------------------------- processes


def _cgroup_path(lines: list[str]) -> str | None:
    """The most telling cgroup path: the v2 line, else name=systemd, else the first line."""
    chosen = None
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            return path
        if controllers == "name=systemd" and chosen is None:
            chosen = path
    if chosen is None and lines:
        chosen = lines[0].split(":", 2)[-1]
    return chosen


def parse_processes(raw: str) -> list[dict[str, Any]]:
    """Running processes with user, command line and cgroup, without the auditor's own.

    `cgroup` is the cgroup v2 path (or, on v1, the name=systemd one): container workloads show
    `docker-<id>.scope`, `/docker/<id>`, `kubepods`, `libpod` ... there. Kernel threads have
    `args` in brackets. Without `ps`, `user` and `args` are None. Example::

        [{"pid": 612, "ppid": 1, "uid": 0, "user": "root", "comm": "sshd",
          "args": "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups",
          "cgroup": "/system.slice/ssh.service"}]
    """
    self_pid = _int_or_none(_first(raw, "self"))
    procs: dict[int, dict[str, Any]] = {}

    def entry(pid: int) -> dict[str, Any]:
        return procs.setdefault(
            pid,
            {
                "pid": pid,
                "ppid": None,
                "uid": None,
                "user": None,
                "comm": None,
                "args": None,
                "cgroup": None,
            },
        )

    cgroups: dict[int, list[str]] = {}
    for tag, value in _tagged(raw):
        if tag == "A":
            parts = value.split(None, 4)
            if len(parts) < 4:
                continue
            pid, ppid, uid = (_int_or_none(p) for p in parts[:3])
            if pid is None:
                continue
            e = entry(pid)
            e.update({"ppid": ppid, "uid": uid, "user": unescape(parts[3])})
            e["args"] = unescape(parts[4]) if len(parts) > 4 else ""
        elif tag == "C":
            parts = value.strip().split(None, 1)
            pid = _int_or_none(parts[0]) if parts else None
            if pid is not None and pid in procs and procs[pid]["comm"] is None:
                procs[pid]["comm"] = parts[1] if len(parts) > 1 else ""
        elif tag in ("c", "s", "G"):
            m = _PROC_PATH.match(value)
            if not m:
                continue
            pid, kind, text = int(m.group(1)), m.group(2), m.group(3)
            if kind == "cgroup":
                cgroups.setdefault(pid, []).append(text)
            elif kind == "comm":
                # grep names the file on every line: a name holding a newline is two lines
                e = entry(pid)
                e["comm"] = text if e["comm"] is None else f"{e['comm']}\\012{text}"
            elif kind == "status":
                key, _, rest = text.partition(":")
                fields = rest.split()
                if key == "Uid" and fields and entry(pid)["uid"] is None:
                    procs[pid]["uid"] = _int_or_none(fields[1] if len(fields) > 1 else fields[0])
                elif key == "PPid" and fields and entry(pid)["ppid"] is None:
                    procs[pid]["ppid"] = _int_or_none(fields[0])
    if not procs:
        raise FactUnavailable("no process could be listed")
    for pid, lines in cgroups.items():
        if pid in procs:
            path = _cgroup_path(lines)
            procs[pid]["cgroup"] = None if path is None else unescape(path)
    for e in procs.values():
        if e["comm"] is not None:
            e["comm"] = unescape(e["comm"])
    # drop the auditor's own shell and everything it started (ps, grep, awk ...)
    own: set[int] = set()
    if self_pid is not None:
        own.add(self_pid)
        changed = True
        while changed:
            changed = False
            for pid, e in procs.items():
                if pid not in own and e["ppid"] in own:
                    own.add(pid)
                    changed = True
    return [procs[pid] for pid in sorted(procs) if pid not in own]


# --------------------------------------------------------------------------------- runtimes

_VERSION = re.compile(r"\bv?(\d+\.\d+(?:\.\d+)?(?:[-+~][0-9A-Za-z.+~-]*)?)")


def parse_runtimes(raw: str) -> dict[str, dict[str, Any]]:
    """Container runtimes and orchestrator components: binary found, version, process running.

    `installed` = a binary is on the fixed search path (sbin and bin dirs, /opt/bin,
    /snap/bin). A binary that a dpkg or rpm package installed names that `package` and its
    `package_version`, and `version` is the upstream part of it; any other binary's `version`
    is taken from `<binary> --version` (None when it printed none). `running` = a process with
    that name exists. Control-plane components that run as static pods show `installed` False
    and `running` True. Example::

        {"docker": {"installed": True, "path": "/usr/sbin/dockerd", "version": "20.10.24+dfsg1",
                    "package": "docker.io", "package_version": "20.10.24+dfsg1-1+deb12u1",
                    "running": True},
         "containerd": {...}, "podman": {...}, "cri-o": {...}, "runc": {...},
         "kubelet": {...}, "kube-apiserver": {...}, "etcd": {...}, ...}
    """
    names = _all(raw, "N")
    if not names:
        raise FactUnavailable("runtimes section printed nothing")
    result: dict[str, dict[str, Any]] = {
        name: {
            "installed": False,
            "path": None,
            "version": None,
            "package": None,
            "package_version": None,
            "running": False,
        }
        for name in names
    }
    package_versions = {
        unescape(name): unescape(version)
        for name, _, version in (value.partition(" ") for value in _all(raw, "K"))
    }
    for value in _all(raw, "B"):
        name, _, path = value.partition(" ")
        if name in result:
            result[name].update({"installed": True, "path": unescape(path)})
    for value in _all(raw, "V"):
        name, _, text = value.partition(" ")
        m = _VERSION.search(unescape(text))
        if name in result and m:
            result[name]["version"] = m.group(1)
    for value in _all(raw, "P"):
        name, _, package = value.partition(" ")
        package = unescape(package)
        full = package_versions.get(package)
        if name in result and package:
            result[name].update(package=package, package_version=full)
            m = _VERSION.search(_upstream(full)) if full else None
            result[name]["version"] = m.group(1) if m else None
    for value in _all(raw, "R"):
        name = value.split(" ", 1)[0]
        if name in result:
            result[name]["running"] = True
    return result


def _upstream(version: str) -> str:
    """A package version without its epoch and packaging revision: 1:2.3-4 -> 2.3."""
    version = version.split(":", 1)[1] if re.match(r"\d+:", version) else version
    return version.rsplit("-", 1)[0] if "-" in version else version


# -------------------------------------------------------------------------- kernel_security


def parse_kernel_security(raw: str) -> dict[str, Any]:
    """Mandatory access control, kernel lockdown and seccomp availability.

    `apparmor.enabled` is False when the kernel has no AppArmor (no /sys/module/apparmor) and
    None when /sys is not visible; `profiles_enforce`/`profiles_complain` count loaded
    profiles (None when the list is not readable). `selinux.mode` is "disabled" when selinuxfs
    is absent, `configured` the SELINUX= value of /etc/selinux/config. `lockdown` is the
    selected mode ("none" when the kernel has no lockdown LSM), None when securityfs is not
    mounted, as is `lsm`. Example::

        {"apparmor": {"enabled": True, "profiles_enforce": 12, "profiles_complain": 0},
         "selinux": {"mode": "disabled", "configured": None},
         "lockdown": "none", "lsm": ["lockdown", "capability", "apparmor"],
         "seccomp_available": True}
    """
    securityfs = _first(raw, "securityfs") == "mounted"
    sysfs = _first(raw, "sysfs") == "present"
    aa_value = _first(raw, "aa-enabled")
    aa_enabled: bool | None
    if aa_value is not None:
        aa_enabled = aa_value.strip().upper().startswith("Y")
    else:
        aa_enabled = False if sysfs else None
    profiles = _first(raw, "aa-profiles")
    enforce = complain = None
    if profiles == "readable":
        counts: dict[str, int] = {}
        for value in _all(raw, "aa-mode"):
            mode, _, count = value.rpartition(" ")
            counts[mode] = _int_or_none(count) or 0
        enforce = counts.get("(enforce)", 0)
        complain = counts.get("(complain)", 0)
    se_value = _first(raw, "se-enforce")
    se_mode: str | None
    if se_value is not None:
        se_mode = {"1": "enforcing", "0": "permissive"}.get(se_value.strip())
    else:
        se_mode = "disabled" if sysfs else None
    configured = _first(raw, "se-config")
    configured = None if configured is None else unescape(configured)
    lockdown: str | None = None
    lsm: list[str] | None = None
    if securityfs:
        text = _first(raw, "lockdown")
        if text is None:
            lockdown = "none"
        else:
            m = re.search(r"\[(\w+)\]", text)
            lockdown = m.group(1) if m else unescape(text.strip()) or None
        lsm_text = _first(raw, "lsm")
        lsm = [unescape(s) for s in lsm_text.strip().split(",") if s] if lsm_text else None
    return {
        "apparmor": {
            "enabled": aa_enabled,
            "profiles_enforce": enforce,
            "profiles_complain": complain,
        },
        "selinux": {
            "mode": se_mode,
            "configured": configured.strip().strip("\"'").lower() if configured else None,
        },
        "lockdown": lockdown,
        "lsm": lsm,
        "seccomp_available": _first(raw, "seccomp") is not None,
    }


# --------------------------------------------------------------------------------- hardware


def parse_hardware(raw: str) -> dict[str, Any]:
    """UEFI, Secure Boot, TPM and boot measurement evidence (4.6).

    `secure_boot` is False on legacy-BIOS boots and when the firmware has no SecureBoot
    variable, None when efivars is not readable. `tpm.version_major` falls back to 2 when only
    /dev/tpmrm0 (a TPM 2.0 resource manager) tells. `measured_boot_log` and `ima_log` are None
    when securityfs is not mounted. Example::

        {"efi": True, "secure_boot": True, "tpm": {"present": True, "version_major": 2},
         "measured_boot_log": True, "ima_log": False}
    """
    efi_value = _first(raw, "efi")
    if efi_value is None:
        raise FactUnavailable("hardware section printed nothing")
    efi = efi_value == "yes"
    secure_boot: bool | None = False
    if efi:
        sb = (_first(raw, "sb") or "").strip()
        if sb in ("absent",):
            secure_boot = False
        elif sb and sb.split()[-1].isdigit() and len(sb.split()) >= 5:
            secure_boot = sb.split()[-1] == "1"
        else:
            secure_boot = None
    sysfs = _first(raw, "sysfs") == "present"
    tpm_present: bool | None = _first(raw, "tpm") == "yes" or _first(raw, "tpmrm") == "yes"
    if not tpm_present and not sysfs:
        tpm_present = None
    major = _int_or_none(_first(raw, "tpm-major"))
    if major is None and _first(raw, "tpmrm") == "yes":
        major = 2
    securityfs = _first(raw, "securityfs") == "mounted"
    return {
        "efi": efi,
        "secure_boot": secure_boot,
        "tpm": {"present": tpm_present, "version_major": major},
        "measured_boot_log": (_first(raw, "bios-log") == "yes") if securityfs else None,
        "ima_log": (_first(raw, "ima-log") == "yes") if securityfs else None,
    }


# -------------------------------------------------------------------------------------- fim


def parse_fim(raw: str) -> dict[str, Any]:
    """File integrity monitoring by AIDE: binary, initialised database, schedule.

    `database` is True when /var/lib/aide/aide.db or aide.db.gz exists (aide.db.new alone means
    aideinit ran but the database was never put in place), None when /var/lib/aide is not
    readable. `scheduled` is True when a cron file mentions aide or an aide timer is enabled,
    None when nothing was found but some cron location was unreadable. Example::

        {"aide": {"installed": True, "path": "/usr/bin/aide", "database": True,
                  "database_files": ["/var/lib/aide/aide.db"], "scheduled": True,
                  "schedules": ["/etc/cron.daily/dailyaidecheck"]}}
    """
    path = _first(raw, "bin")
    path = None if path is None else unescape(path)
    dbdir = _first(raw, "dbdir")
    if dbdir is None:
        raise FactUnavailable("fim section printed nothing")
    db_files = [unescape(f) for f in _all(raw, "db")]
    database: bool | None
    if dbdir == "unreadable":
        database = None
    else:
        database = any(f.rsplit("/", 1)[-1] in ("aide.db", "aide.db.gz") for f in db_files)
    schedules = [unescape(f) for f in _all(raw, "cron") + _all(raw, "timer")]
    scheduled: bool | None = True if schedules else (None if _all(raw, "X") else False)
    return {
        "aide": {
            "installed": path is not None,
            "path": path,
            "database": database,
            "database_files": db_files,
            "scheduled": scheduled,
            "schedules": schedules,
        }
    }


# ----------------------------------------------------------------------------------- reboot


def parse_reboot(raw: str) -> dict[str, Any]:
    """Reboot-required flag, running kernel and the kernels installed.

    `reboot_required` reflects /var/run/reboot-required (Debian/Ubuntu packages set it; False
    only means the flag is absent, which on RHEL says nothing: compare `running_kernel` with
    `installed_kernels` there). `installed_kernels` joins /boot/vmlinuz-* names and kernel
    packages, sorted oldest first by natural version order. Example::

        {"reboot_required": False, "reboot_required_pkgs": [],
         "running_kernel": "6.1.0-18-amd64",
         "installed_kernels": ["6.1.0-17-amd64", "6.1.0-18-amd64"]}
    """
    running = _first(raw, "running")
    if running is None:
        raise FactUnavailable("reboot section printed nothing")
    flag = _first(raw, "flag")
    kernels: set[str] = set()
    for name in map(unescape, _all(raw, "boot")):
        if name and not name.startswith("0-rescue-") and not name.endswith(".old"):
            kernels.add(name)
    for package in map(unescape, _all(raw, "deb")):
        version = package.removeprefix("linux-image-")
        if version.endswith("-dbg"):
            continue
        kernels.add(version.removesuffix("-unsigned"))
    for version in map(unescape, _all(raw, "rpm")):
        if version:
            kernels.add(version)
    return {
        "reboot_required": None if flag is None else flag == "present",
        "reboot_required_pkgs": [unescape(p) for p in _all(raw, "pkg")],
        "running_kernel": unescape(running.strip()) or None,
        "installed_kernels": sorted(kernels, key=_natural_key),
    }
