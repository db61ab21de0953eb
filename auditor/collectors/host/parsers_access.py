"""Pure parsers for the access-control host facts: sshd Match blocks, password ageing and
hashing, login.defs, PAM, shell defaults, root's PATH, home directories, core dumps and sudo
Defaults.

Same rules as parsers.py: no I/O, the text is untrusted and arrives escaped, and evidence that
could not be read gives `FactUnavailable` (or an explicit None), never data that looks compliant.
"""

from __future__ import annotations

import re
from typing import Any

from auditor.collectors.host import parsers
from auditor.collectors.host.escaping import unescape
from auditor.collectors.host.parsers import (
    FactUnavailable,
    _all,
    _first,
    _int_or_none,
    _marker,
    _stat_fields,
    _tagged,
    file_lines,
)

__all__ = [
    "parse_accounts",
    "parse_core_dumps",
    "parse_homes",
    "parse_login_defs",
    "parse_pam",
    "parse_root_path",
    "parse_shadow",
    "parse_shell_defaults",
    "parse_sshd_config",
    "parse_sudoers",
]


# ------------------------------------------------------------------------------ sshd_config


def _t_settings(lines: list[str]) -> dict[str, Any]:
    """Settings from `sshd -T` lines: lists for the keywords sshd accumulates."""
    settings: dict[str, Any] = {}
    for line in lines:
        parts = line.split(None, 1)
        if not parts:
            continue
        keyword = unescape(parts[0]).lower()
        value = unescape(parts[1].strip()) if len(parts) > 1 else ""
        if keyword in parsers._SSHD_LIST_KEYS:
            settings.setdefault(keyword, []).append(value)
        elif keyword not in settings:
            settings[keyword] = value
    return settings


def _match_runs(raw: str) -> dict[int, dict[str, Any]]:
    """Per Match block number (1-based): the connection spec and the `sshd -T -C` output."""
    runs: dict[int, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    for tag, value in _tagged(raw):
        if tag == "M":
            number, _, spec = value.partition(" ")
            index = _int_or_none(number)
            if index is None:
                current = None
                continue
            current = {"spec": unescape(spec), "rc": None, "lines": []}
            runs[index] = current
        elif current is not None and tag == "C-rc":
            current["rc"] = value
        elif current is not None and tag == "C":
            current["lines"].append(value)
    return runs


_UNJUDGED = {"-none": "no local account is in the group it names", "-limit": "past 16 blocks"}
_SSHD_TIME = re.compile(r"(\d+)([sSmMhHdDwW]?)")
_SSHD_TIME_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SSHD_ALGORITHM_KEYS = ("ciphers", "macs", "kexalgorithms")


def _as_sshd_t(settings: dict[str, Any]) -> None:
    """Written values in the form sshd -T prints them, so that checks compare one form: times
    in seconds ("2m" -> "120"); an algorithm list that adds ("+x") or moves ("^x") names the
    algorithms it enables, one that removes ("-x") leaves the default (the key dropped)."""
    for key in ("logingracetime", "clientaliveinterval"):
        value = settings.get(key)
        if isinstance(value, str) and re.fullmatch(r"(\d+[sSmMhHdDwW]?)+", value):
            total = sum(int(n) * _SSHD_TIME_UNITS[u.lower()] for n, u in _SSHD_TIME.findall(value))
            settings[key] = str(total)
    for key in _SSHD_ALGORITHM_KEYS:
        value = settings.get(key)
        if isinstance(value, str) and value.startswith("-"):
            del settings[key]
        elif isinstance(value, str) and value.startswith(("+", "^")):
            settings[key] = value[1:]


def parse_sshd_config(raw: str) -> dict[str, Any]:
    """parsers.parse_sshd_config, with every Match block judged for a connection it applies to.

    Each entry of `matches` gains `effective`: for a connection the block applies to, the value
    of every setting the block names or that differs from the global one. With `sshd -T`
    working, sshd itself answers for a connection built from the block's criteria
    (`connection`, e.g. "user=bob,host=auditor.invalid,addr=10.0.0.0"; a Group block uses a
    member of the group), so later blocks and first-wins order count as in sshd (`judged_by`
    "sshd -T -C"). Otherwise (`judged_by` "files") the block's own settings over the global
    ones; `unjudged` then says why sshd -T -C was not asked (no member of the group, too many
    blocks). From the files, times are in seconds and algorithm lists as sshd -T shows them.
    Example of a block::

        {"criteria": "Group legacy", "settings": {"passwordauthentication": "yes"},
         "connection": "user=olduser,host=auditor.invalid,addr=192.0.2.1",
         "judged_by": "sshd -T -C", "unjudged": None,
         "effective": {"passwordauthentication": "yes"}}
    """
    fact = parsers.parse_sshd_config(raw)
    if not fact.get("installed"):
        return fact
    global_settings: dict[str, Any] = fact["settings"]
    if fact["source"] == "files":
        _as_sshd_t(global_settings)
        for block in fact["matches"]:
            _as_sshd_t(block["settings"])
    runs = _match_runs(raw) if fact["source"] == "sshd -T" else {}
    for number, block in enumerate(fact["matches"], start=1):
        run = runs.get(number)
        block["connection"] = None
        block["unjudged"] = None
        if run is not None and run["rc"] == "0":
            effective = _t_settings(run["lines"])
            block["connection"] = run["spec"]
            block["judged_by"] = "sshd -T -C"
        else:
            effective = {**global_settings, **block["settings"]}
            block["judged_by"] = "files"
            if run is not None:
                block["unjudged"] = _UNJUDGED.get(run["spec"], f"sshd -T -C exit {run['rc']}")
        block["effective"] = {
            key: value
            for key, value in effective.items()
            if key in block["settings"] or global_settings.get(key) != value
        }
    return fact


# --------------------------------------------------------------------------------- accounts


def parse_accounts(raw: str) -> dict[str, Any]:
    """parsers.parse_accounts plus `duplicate_group_names` (the group names /etc/group lists
    more than once; the `groups` map keeps the first) and, per user, `shadowed`: True when
    the /etc/passwd password field is "x" (the hash, if any, is in /etc/shadow). Example::

        {"users": [{"name": "root", "uid": 0, ..., "shadowed": True}], ...,
         "duplicate_group_names": []}
    """
    fact = parsers.parse_accounts(raw)
    for user in fact["users"]:
        # password_state reads as a credential's name to the redaction; a flag does not
        user["shadowed"] = user["password_state"] == "shadow"
    seen: set[str] = set()
    duplicates: set[str] = set()
    for value in _all(raw, "G"):
        name = unescape(value.split(":", 1)[0])
        (duplicates if name in seen else seen).add(name)
    fact["duplicate_group_names"] = sorted(duplicates)
    return fact


# ----------------------------------------------------------------------------------- shadow


def _days(text: str) -> int | None:
    """A shadow day count; empty means "not set"."""
    return _int_or_none(text) if text.strip() else None


def parse_shadow(raw: str) -> dict[str, Any]:
    """parsers.parse_shadow plus `accounts`: per account its password state, the hash method
    id (never the hash: "y" yescrypt, "6" sha512, "5" sha256, "1" md5, "des", "none" when
    there is no hash) and the ageing fields in days (None when empty). Example::

        {"empty_password": [], "locked": ["daemon"], "password_set": ["root"],
         "accounts": [{"name": "root", "state": "set", "method": "y", "last_change": 19700,
                       "min_days": 0, "max_days": 99999, "warn_days": 7,
                       "inactive_days": None, "expire": None}, ...]}
    """
    fact: dict[str, Any] = dict(parsers.parse_shadow(raw))
    state = {name: kind for kind, key in _SHADOW_STATES for name in fact[key]}
    accounts = []
    for value in _all(raw, "A"):
        parts = value.split(":")
        if len(parts) != 8 or not parts[0]:
            continue
        name = unescape(parts[0])
        accounts.append(
            {
                "name": name,
                "state": state.get(name),
                "method": unescape(parts[7]),
                "last_change": _days(parts[1]),
                "min_days": _days(parts[2]),
                "max_days": _days(parts[3]),
                "warn_days": _days(parts[4]),
                "inactive_days": _days(parts[5]),
                "expire": _days(parts[6]),
            }
        )
    fact["accounts"] = accounts
    return fact


_SHADOW_STATES = (("empty", "empty_password"), ("locked", "locked"), ("set", "password_set"))


# ---------------------------------------------------------------------------------- sudoers


def _defaults_options(line: str) -> list[str]:
    """The options of a plain `Defaults` line (not Defaults:user, @host, >runas, !cmnd)."""
    rest = line[len("Defaults") :]
    if not rest or not rest[0].isspace():
        return []
    options = re.findall(r'(?:[^,"]|"[^"]*")+', rest)
    cleaned = (" ".join(o.split()) for o in options if o.strip())
    return [re.sub(r"\s*([+-]?=)\s*", r"\1", o) for o in cleaned]


def parse_sudoers(raw: str) -> dict[str, Any]:
    """parsers.parse_sudoers plus `defaults`: the options of the plain `Defaults` lines, in
    order. Example::

        {"present": True, ..., "defaults": ["env_reset", "use_pty", "logfile=/var/log/sudo.log"]}
    """
    fact = parsers.parse_sudoers(raw)
    fact["defaults"] = [
        option for rule in fact["rules"] for option in _defaults_options(rule["line"])
    ]
    return fact


# ------------------------------------------------------------------------------- login_defs


def _umask_mode(umask: str | None) -> str | None:
    """The mode a umask leaves new directories ("027" -> "0750"), None when not octal."""
    if umask is None or not re.fullmatch(r"0?[0-7]{1,3}", umask):
        return None
    return f"{0o777 & ~int(umask, 8):04o}"


def parse_login_defs(raw: str) -> dict[str, Any]:
    """/etc/login.defs as `settings` {NAME: value} (the last definition wins, as in
    shadow-utils); `present` False when the file does not exist. PASS_MAX_DAYS, PASS_MIN_DAYS and
    PASS_WARN_AGE are in `ageing` as numbers (None when absent or not a number); `umask_mode`
    is the mode UMASK leaves new directories (None when absent or not octal). Example::

        {"present": True, "settings": {"UMASK": "022", "ENCRYPT_METHOD": "SHA512", ...},
         "ageing": {"max_days": 99999, "min_days": 0, "warn_days": 7}, "umask_mode": "0755"}
    """
    if _first(raw, "X") is not None:
        raise FactUnavailable("/etc/login.defs not readable")
    if _first(raw, "N") is not None:
        return {"present": False, "settings": {}, "ageing": {}, "umask_mode": None}
    settings: dict[str, str] = {}
    for value in _all(raw, "D"):
        name, _, setting = value.partition(" ")
        settings[unescape(name)] = unescape(setting)
    ageing = {key: _int_or_none(settings.pop(name, None)) for name, key in _AGEING.items()}
    return {
        "present": True,
        "settings": settings,
        "ageing": ageing,
        "umask_mode": _umask_mode(settings.get("UMASK")),
    }


# The PASS_* names read as credentials to the redaction (auditor.redact): kept as numbers
# under names that do not.
_AGEING = {"PASS_MAX_DAYS": "max_days", "PASS_MIN_DAYS": "min_days", "PASS_WARN_AGE": "warn_days"}


# -------------------------------------------------------------------------------------- pam


def _pam_entry(line: str) -> dict[str, Any] | None:
    """One PAM rule: type, control (a [..] control kept whole), module, arguments."""
    tokens = line.split()
    if not tokens:
        return None
    if tokens[0].startswith("@"):
        return {"type": "@include", "control": "", "module": " ".join(tokens[1:]), "args": []}
    if len(tokens) < 3:
        return None
    kind, rest = tokens[0].lstrip("-"), tokens[1:]
    control = rest.pop(0)
    while control.startswith("[") and not control.endswith("]") and rest:
        control += " " + rest.pop(0)
    if not rest:
        return None
    module = rest[0].rsplit("/", 1)[-1]
    return {"type": kind, "control": control, "module": module, "args": rest[1:]}


def _requires(control: str) -> bool:
    """Whether a PAM control fails the stack when the module fails: required, requisite, or a
    [...] control whose default is die or bad."""
    if control in ("required", "requisite"):
        return True
    return control.startswith("[") and re.search(r"\bdefault=(die|bad)\b", control) is not None


def _conf_settings(lines: list[str]) -> dict[str, str]:
    """key = value (or a bare flag, as "") lines of pwquality.conf and faillock.conf."""
    settings: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if key.strip():
            settings[key.strip()] = value.strip() if sep else ""
    return settings


_HASH_METHODS = ("yescrypt", "sha512", "sha256", "gost_yescrypt", "blowfish", "md5", "bigcrypt")


def parse_pam(raw: str) -> dict[str, Any]:
    """The PAM rules of su and the common (Debian) or system-auth (RHEL) stacks, with what
    checks ask of them. Example::

        {"files": {"/etc/pam.d/su": [{"type": "auth", "control": "required",
                                      "module": "pam_wheel.so", "args": ["use_uid"]}, ...]},
         "su_wheel": True, "unix_hash": "yescrypt", "nullok": [], "faillock": False,
         "pwquality": False, "pwquality_settings": {"minlen": "14"}, "faillock_settings": {}}

    `su_wheel` is None without /etc/pam.d/su; `unix_hash` is pam_unix's hashing argument in the
    password stack (None when it names none); `nullok` lists the files where pam_unix accepts
    empty passwords.
    """
    unreadable = [unescape(v) for v in _all(raw, "X")]
    if unreadable:
        raise FactUnavailable(f"{', '.join(unreadable)} not readable")
    if _first(raw, "N") is not None:
        raise FactUnavailable("/etc/pam.d does not exist")
    files: dict[str, list[dict[str, Any]]] = {}
    conf: dict[str, list[str]] = {}
    current = ""
    for tag, value in _tagged(raw):
        if tag == "F":
            current = unescape(value)
            (conf if current.endswith(".conf") else files).setdefault(current, [])
        elif tag == "L" and current:
            line = unescape(value)
            if current in conf:
                conf[current].append(line)
            elif (entry := _pam_entry(line)) is not None:
                files[current].append(entry)
    stacks = [e for f, entries in files.items() if f != "/etc/pam.d/su" for e in entries]
    password = [e for f, es in files.items() if f.endswith(("-password", "-auth")) for e in es]
    su = files.get("/etc/pam.d/su")
    unix_args = [a for e in password if e["module"] == "pam_unix.so" and e["type"] == "password"
                 for a in e["args"]]  # fmt: skip
    pwquality: dict[str, str] = {}
    for path in sorted(p for p in conf if "pwquality" in p):  # pwquality.conf, then conf.d
        pwquality.update(_conf_settings(conf[path]))
    return {
        "files": files,
        "su_wheel": None if su is None else any(
            e["module"] == "pam_wheel.so" and e["type"] == "auth" and _requires(e["control"])
            for e in su
        ),
        "unix_hash": next((a for a in unix_args if a in _HASH_METHODS), None),
        "nullok": sorted(
            {f for f, es in files.items() for e in es
             if e["module"] == "pam_unix.so" and "nullok" in e["args"]}
        ),
        "faillock": any(e["module"] == "pam_faillock.so" for e in stacks),
        "pwquality": any(e["module"] in ("pam_pwquality.so", "pam_cracklib.so") for e in stacks),
        "pwquality_settings": pwquality,
        "faillock_settings": _conf_settings(conf.get("/etc/security/faillock.conf", [])),
    }  # fmt: skip


# --------------------------------------------------------------------------- shell_defaults


def parse_shell_defaults(raw: str) -> dict[str, Any]:
    """umask and TMOUT statements in /etc/profile, /etc/bash.bashrc and /etc/profile.d/*.sh,
    in file order. Example::

        {"umask": [{"file": "/etc/profile.d/umask.sh", "value": "027", "mode": "0750"}],
         "tmout": [{"file": "/etc/profile.d/tmout.sh", "value": "900"}]}
    """
    unreadable = [unescape(v) for v in _all(raw, "X")]
    if unreadable:
        raise FactUnavailable(f"{', '.join(unreadable)} not readable")
    umask: list[dict[str, str | None]] = []
    tmout: list[dict[str, str]] = []
    for current, written in file_lines(raw):
        line = written.strip()
        found = re.match(r"umask\s+(\S+)", line)
        if found:
            value = found.group(1).strip("\"';")
            umask.append({"file": current, "value": value, "mode": _umask_mode(value)})
            continue
        found = re.search(r"TMOUT=([^\s;]*)", line)
        if found:
            tmout.append({"file": current, "value": found.group(1).strip("\"'")})
    return {"umask": umask, "tmout": tmout}


# -------------------------------------------------------------------------------- root_path


def _stats(raw: str) -> list[dict[str, Any]]:
    """The `_stat_each` lines (S:/E:), in order: `exists` (None when stat failed: not known to
    be absent) and the decoded stat fields."""
    stats: list[dict[str, Any]] = []
    for tag, value in _tagged(raw):
        if tag == "S":
            fields = None if value == "absent" else _stat_fields(value)
            stats.append({"exists": fields is not None, **(fields or {})})
        elif tag == "E":
            stats.append({"exists": None, "error": unescape(value)})
    return stats


def parse_root_path(raw: str) -> dict[str, Any]:
    """root's PATH as su - sets it (login.defs ENV_SUPATH) and as root's start-up files and
    /etc/environment assign it, with every absolute directory named. `entries` keeps each
    PATH's items as written ("$PATH" references too); `problems` names the empty, "." and
    relative ones. Example::

        {"sources": [{"file": "/etc/login.defs", "entries": ["/usr/local/sbin", "/usr/bin"]}],
         "problems": [], "directories": [{"path": "/usr/bin", "exists": True,
         "type": "directory", "mode": "0755", "uid": 0, "gid": 0, "owner": "root",
         "group": "root"}]}

    Raises FactUnavailable when one of root's files is not readable (needs root).
    """
    unreadable = [unescape(v) for v in _all(raw, "X")]
    if unreadable:
        raise FactUnavailable(f"{', '.join(unreadable)} not readable (needs root)")
    sources = []
    problems = []
    for value in _all(raw, "P"):
        file, _, path = value.partition(" ")
        entries = unescape(path).split(":")
        sources.append({"file": unescape(file), "entries": entries})
        for entry in entries:
            if entry == "" or entry == "." or not entry.startswith(("/", "$")):
                problems.append(f"{unescape(file)}: {entry or '(empty)'}")
    paths = [unescape(v) for v in _all(raw, "D")]
    stats = _stats(raw)
    stats += [{"exists": None}] * (len(paths) - len(stats))  # the script stopped short
    directories = [{"path": p, **stat} for p, stat in zip(paths, stats, strict=False)]
    return {"sources": sources, "problems": problems, "directories": directories}


# ------------------------------------------------------------------------------------ homes


def parse_homes(raw: str) -> dict[str, Any]:
    """Home directories of the accounts whose shell is in /etc/shells (not nologin).
    `limit_hit` is True when more than 500 accounts were listed (the rest unseen). Example::

        {"users": [{"name": "alice", "uid": 1000, "home": "/home/alice", "exists": True,
                    "type": "directory", "mode": "0750", "owner_uid": 1000,
                    "owner": "alice"}], "limit_hit": False}
    """
    if _first(raw, "X") is not None:
        raise FactUnavailable("/etc/passwd not readable")
    users: list[dict[str, Any]] = []
    for value in _all(raw, "U"):
        name, _, rest = value.partition(":")
        uid, _, home = rest.partition(":")
        users.append(
            {"name": unescape(name), "uid": _int_or_none(uid), "home": unescape(home),
             "exists": None, "type": None, "mode": None, "owner_uid": None, "owner": None}
        )  # fmt: skip
    for user, stat in zip(users, _stats(raw), strict=False):
        user.update(
            exists=stat["exists"], type=stat.get("type"), mode=stat.get("mode"),
            owner_uid=stat.get("uid"), owner=stat.get("owner"),
        )  # fmt: skip
    return {"users": users, "limit_hit": _marker(raw, "limit") is not None}


# ------------------------------------------------------------------------------- core_dumps


def parse_core_dumps(raw: str) -> dict[str, Any]:
    """Core dump limits from limits.conf/limits.d and systemd-coredump's settings. Example::

        {"limits": [{"file": "/etc/security/limits.d/cis.conf", "domain": "*",
                     "type": "hard", "value": "0"}],
         "hard_limit_zero": True,
         "coredump": {"installed": False, "storage": None, "process_size_max": None}}

    `hard_limit_zero`: a `* hard core 0` (or `-`) entry, the one that binds every user.
    """
    unreadable = [unescape(v) for v in _all(raw, "X")]
    if unreadable:
        raise FactUnavailable(f"{', '.join(unreadable)} not readable")
    limits: list[dict[str, str]] = []
    coredump: dict[str, Any] = {
        "installed": _first(raw, "coredump") == "installed",
        "storage": None,
        "process_size_max": None,
    }
    for current, line in file_lines(raw):
        if not current:
            continue
        if "coredump.conf" in current:
            key, sep, setting = line.partition("=")
            names = {"Storage": "storage", "ProcessSizeMax": "process_size_max"}
            if sep and key.strip() in names:
                coredump[names[key.strip()]] = setting.strip()
            continue
        fields = line.split()
        if len(fields) >= 4 and fields[2] == "core":
            limits.append(
                {"file": current, "domain": fields[0], "type": fields[1], "value": fields[3]}
            )
    return {
        "limits": limits,
        "hard_limit_zero": any(
            e["domain"] == "*" and e["type"] in ("hard", "-") and e["value"] == "0" for e in limits
        ),
        "coredump": coredump,
    }
