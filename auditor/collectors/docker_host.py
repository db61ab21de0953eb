"""Host-side facts of a Docker daemon: dockerd's flags and daemon.json, unit files, file modes.

Gathered through the daemon's host (local, or the SSH connection of docker+ssh://) with the
host collector's runner: ONE read-only script made of the `docker_daemon` section below and
the host sections `file_modes`, `mounts` and `audit`. The pure functions here turn its output
into two facts:

- docker.daemon_config: the dockerd process serving this daemon (found by its data root),
  its command line, its daemon.json and the settings they make together;
- docker.daemon_host: ownership and modes of the socket, configuration, unit, TLS and
  registry certificate files, the unit files' settings, the mount holding the data root,
  the audit rules, and whether Docker client configs hold plaintext registry credentials.
"""

from __future__ import annotations

import json
import posixpath
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from auditor.collectors.host import parsers
from auditor.collectors.host.escaping import split_lines, unescape
from auditor.collectors.host.sections import SECTIONS, FactUnavailable, Section, snippet

# The upstream default data root; a dockerd without --data-root (or data-root) uses it.
DEFAULT_DATA_ROOT = "/var/lib/docker"
DEFAULT_CONFIG_FILE = "/etc/docker/daemon.json"

# Paths stat'ed on every Docker host, with the role they play (what the checks judge them as).
STATIC_PATHS: dict[str, str] = {
    "/var/run/docker.sock": "socket",
    "/run/docker.sock": "socket",
    "/run/containerd/containerd.sock": "containerd-socket",
    "/etc/docker": "config-dir",
    "/etc/docker/certs.d": "certs-dir",
    "/etc/default/docker": "defaults-file",
    "/etc/sysconfig/docker": "defaults-file",
}


# Read-only by construction: it greps /proc, stats and reads files, prints counts of the
# credentials in Docker client configs (never a value). Lines are tagged:
#   P:pid O:uid A:arg          each dockerd process and its arguments (newlines shown as ?)
#   CF:path CL:line CE:path    a daemon.json (default + every --config-file), CX:path unreadable
#   UF:unit path UL:line       a docker.service / docker.socket unit file or drop-in
#   R:role path + mP/mS/mT/mE  a stat, in the host file_modes format behind an `m`
#   KF:path KA:n KS:yes        a Docker client config: count of inline auths, helper present
_DAEMON = r"""
IFS='
'
_args() { tr '\000\n' '\n?' < "/proc/$1/cmdline" 2>/dev/null; }
_flag() {
  awk -v l="$1" -v s="${2:-}" '
    take { print; take = 0; next }
    $0 == l || (s != "" && $0 == s) { take = 1; next }
    index($0, l "=") == 1 { print substr($0, length(l) + 2); next }
    s != "" && index($0, s "=") == 1 { print substr($0, length(s) + 2) }
  '
}
_stat() {
  printf 'R:%s %s\n' "$1" "$2"
  printf 'mP:%s\n' "$2"
  if o=$(stat -c '%f %u %g %U %G' -- "$2" 2>&1); then
    printf 'mS:%s\n' "$o"
    if [ -L "$2" ] && o=$(stat -L -c '%f %u %g %U %G' -- "$2" 2>&1); then
      printf 'mT:%s\n' "$o"
    fi
  else
    printf 'mE:%s\n' "$o" | head -n 1
  fi
}
pids=$(grep -l -x -s dockerd /proc/[0-9]*/comm | sed -n 's|^/proc/\([0-9][0-9]*\)/comm$|\1|p')
for p in $pids; do
  printf 'P:%s\n' "$p"
  printf 'O:%s\n' "$(stat -c %u "/proc/$p" 2>/dev/null)"
  _args "$p" | awk '{ print "A:" $0 }'
done
cfgs=$(
  echo /etc/docker/daemon.json
  for p in $pids; do _args "$p" | _flag --config-file; done
)
cfgs=$(printf '%s\n' "$cfgs" | sort -u)
set -f
for c in $cfgs; do
  _stat config-file "$c"
  if [ -f "$c" ] && [ -r "$c" ]; then
    printf 'CF:%s\n' "$c"
    awk '{ print "CL:" $0 }' "$c"
    printf 'CE:%s\n' "$c"
  elif [ -e "$c" ]; then
    printf 'CX:%s\n' "$c"
  fi
done
more=$(
  for p in $pids; do
    _args "$p" | _flag --tlscacert | sed 's/^/tls-ca /'
    _args "$p" | _flag --tlscert | sed 's/^/tls-cert /'
    _args "$p" | _flag --tlskey | sed 's/^/tls-key /'
    _args "$p" | _flag --host -H | sed -n 's|^unix://|socket |p'
  done
  for c in $cfgs; do
    [ -f "$c" ] && [ -r "$c" ] || continue
    grep -o '"tls\(cacert\|cert\|key\)"[[:space:]]*:[[:space:]]*"[^"]*"' "$c" 2>/dev/null |
      sed -e 's/^"tlscacert"[^"]*"\(.*\)"$/tls-ca \1/' \
        -e 's/^"tlscert"[^"]*"\(.*\)"$/tls-cert \1/' \
        -e 's/^"tlskey"[^"]*"\(.*\)"$/tls-key \1/'
    grep -o '"unix://[^"]*"' "$c" 2>/dev/null | sed 's|^"unix://\(.*\)"$|socket \1|'
  done
)
for t in $(printf '%s\n' "$more" | sort -u); do
  case $t in *' '/*) _stat "${t%% *}" "${t#* }" ;; esac
done
set +f
for d in /etc/systemd/system /run/systemd/system /usr/local/lib/systemd/system \
  /lib/systemd/system /usr/lib/systemd/system; do
  if [ "$d" = /usr/lib/systemd/system ] && [ -L /lib ]; then continue; fi
  for u in docker.service docker.socket; do
    for f in "$d/$u" "$d/$u.d"/*.conf; do
      [ -f "$f" ] || continue
      _stat unit "$f"
      if [ -r "$f" ]; then
        printf 'UF:%s %s\n' "$u" "$f"
        awk '{ print "UL:" $0 }' "$f"
      fi
    done
  done
done
for f in /etc/docker/certs.d/*/*; do
  [ -e "$f" ] && _stat registry-cert "$f"
done
seen=
for f in /root/.docker/config.json "${HOME:-/nonexistent}/.docker/config.json"; do
  [ -f "$f" ] || continue
  case " $seen " in *" $f "*) continue ;; esac
  seen="$seen $f"
  if [ -r "$f" ]; then
    printf 'KF:%s\n' "$f"
    n=$(grep -o '"\(auth\|identitytoken\)"[[:space:]]*:[[:space:]]*"[^"]' "$f" | wc -l)
    printf 'KA:%s\n' "$n"
    if grep -q '"credsStore"\|"credHelpers"' "$f"; then echo "KS:yes"; fi
  else
    printf 'KX:%s\n' "$f"
  fi
done
"""


def parse_daemon_section(raw: str) -> dict[str, Any]:
    """The `docker_daemon` section's output, as data. Example::

    {"processes": [{"pid": 812, "uid": 0, "args": ["/usr/sbin/dockerd", "-H", "fd://"]}],
     "configs": {"/etc/docker/daemon.json": "{\\"icc\\": false}\\n"},
     "unreadable": [], "units": [{"unit": "docker.service", "path": "/lib/...",
     "lines": ["[Service]", "ExecStart=/usr/sbin/dockerd -H fd://"]}],
     "files": [{"path": "/etc/docker/daemon.json", "roles": ["config-file"], ...}],
     "client_configs": [{"path": "/root/.docker/config.json", "readable": True,
                         "inline_credentials": 1, "helper": False}]}
    """
    processes: list[dict[str, Any]] = []
    configs: dict[str, str] = {}
    unreadable: list[str] = []
    units: list[dict[str, Any]] = []
    clients: list[dict[str, Any]] = []
    stat_lines: list[str] = []
    roles: dict[str, list[str]] = {}
    reading: str | None = None
    body: list[str] = []
    for line in split_lines(raw):  # escaped: each value is decoded once it is split off
        tag, sep, value = line.partition(":")
        if not sep:
            continue
        if not tag.startswith("m"):
            value = unescape(value)
        if tag == "CL" and reading is not None:
            body.append(value)
        elif tag == "CF":
            reading, body = value, []
        elif tag == "CE" and reading is not None:
            configs[reading] = "\n".join(body) + "\n"
            reading = None
        elif tag == "CX":
            unreadable.append(value)
        elif tag == "P":
            processes.append({"pid": _int(value), "uid": None, "args": []})
        elif tag == "O" and processes:
            processes[-1]["uid"] = _int(value)
        elif tag == "A" and processes:
            processes[-1]["args"].append(value)
        elif tag == "UF":
            unit, _, path = value.partition(" ")
            units.append({"unit": unit, "path": path, "lines": []})
        elif tag == "UL" and units:
            units[-1]["lines"].append(value)
        elif tag == "R":
            role, _, path = value.partition(" ")
            roles.setdefault(path, [])
            if role not in roles[path]:
                roles[path].append(role)
        elif tag.startswith("m"):
            stat_lines.append(line[1:])
        elif tag == "KF":
            clients.append({"path": value, "readable": True, "inline_credentials": 0})
            clients[-1]["helper"] = False
        elif tag == "KA" and clients:
            clients[-1]["inline_credentials"] = _int(value) or 0
        elif tag == "KS" and clients:
            clients[-1]["helper"] = True
        elif tag == "KX":
            clients.append(
                {"path": value, "readable": False, "inline_credentials": None, "helper": None}
            )
    files = _merge_files(parsers.parse_file_modes("\n".join(stat_lines) + "\n"), roles)
    return {
        "processes": processes,
        "configs": configs,
        "unreadable": unreadable,
        "units": units,
        "files": files,
        "client_configs": clients,
    }


def _int(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None


def _merge_files(
    entries: Iterable[Mapping[str, Any]], roles: Mapping[str, Sequence[str]]
) -> list[dict[str, Any]]:
    """One entry per path (the first stat wins) with every role it was stat'ed for, from
    `roles` and from the entries' own `roles`."""
    merged: dict[str, dict[str, Any]] = {}
    for entry in entries:
        path = entry["path"]
        found = merged.setdefault(path, {**entry, "roles": []})
        for role in [*entry.get("roles", []), *roles.get(path, [])]:
            if role not in found["roles"]:
                found["roles"].append(role)
    return list(merged.values())


DAEMON_SECTION = Section(
    "docker_daemon",
    snippet(_DAEMON),
    parse_daemon_section,
    "dockerd processes and arguments, daemon.json files, Docker unit files, TLS and registry "
    "certificate files, Docker client configs (counts only)",
)


def host_sections() -> list[Section]:
    """The sections of the one script run on a Docker daemon's host."""
    wanted = {"file_modes", "mounts", "audit"}
    return [DAEMON_SECTION, *(s for s in SECTIONS if s.name in wanted)]


def static_paths(
    socket_path: str | None, data_root: str | None, audit_paths: Iterable[str]
) -> dict[str, list[str]]:
    """Path -> roles for the file_modes section: the fixed Docker paths, the socket auditor
    talks to, the data root and the paths auditd should watch (CIS Docker 1.1.x)."""
    paths: dict[str, list[str]] = {p: [r] for p, r in STATIC_PATHS.items()}
    if socket_path:
        paths.setdefault(socket_path, [])
        if "socket" not in paths[socket_path]:
            paths[socket_path].append("socket")
    if data_root:
        paths.setdefault(data_root, []).append("data-root")
    for path in audit_paths:
        if isinstance(path, str) and path.startswith("/") and "\n" not in path:
            paths.setdefault(path, []).append("audit-watch")
    return paths


# --- dockerd command line ----------------------------------------------------------------------

# dockerd's boolean flags (a bare --flag means true; --flag=false turns it off).
_BOOL_FLAGS = frozenset(
    {
        "icc", "iptables", "ip6tables", "ip-forward", "ip-masq", "userland-proxy",
        "live-restore", "tls", "tlsverify", "no-new-privileges", "experimental",
        "selinux-enabled", "debug", "raw-logs", "init", "rootless", "ipv6", "validate",
    }
)  # fmt: skip
_SHORT = {"H": "host", "D": "debug", "l": "log-level", "s": "storage-driver", "g": "data-root",
          "G": "group", "b": "bridge", "p": "pidfile", "e": "exec-driver"}  # fmt: skip
# Flags given once per value, and their daemon.json keys.
_LIST_FLAGS = {
    "host": "hosts",
    "authorization-plugin": "authorization-plugins",
    "insecure-registry": "insecure-registries",
    "registry-mirror": "registry-mirrors",
    "default-ulimit": "default-ulimits",
    "log-opt": "log-opts",
    "storage-opt": "storage-opts",
    "exec-opt": "exec-opts",
    "label": "labels",
    "dns": "dns",
    "allow-nondistributable-artifacts": "allow-nondistributable-artifacts",
}
_RENAMED = {"graph": "data-root"}
# `--default-ulimit nofile=1024:2048` and `--log-opt max-size=10m` are maps in daemon.json.
_MAP_FLAGS = frozenset({"default-ulimits", "log-opts", "storage-opts"})


def parse_dockerd_args(args: Sequence[str]) -> dict[str, Any]:
    """dockerd's flags as daemon.json keys and types. Example::

    ["dockerd", "-H", "fd://", "--icc=false", "--log-opt", "max-size=10m"]
    -> {"hosts": ["fd://"], "icc": False, "log-opts": {"max-size": "10m"}}
    """
    flags: dict[str, Any] = {}
    index = 1
    while index < len(args):
        arg = args[index]
        index += 1
        if not arg.startswith("-") or arg in ("-", "--"):
            continue
        name, has_value, value = arg.lstrip("-").partition("=")
        if not arg.startswith("--") and name in _SHORT:
            name = _SHORT[name]
        if name in _BOOL_FLAGS:
            flags[name] = not has_value or value.lower() in ("1", "t", "true")
            continue
        if not has_value:
            if index < len(args) and not args[index].startswith("-"):
                value = args[index]
                index += 1
            else:
                flags[name] = True
                continue
        key = _LIST_FLAGS.get(name, _RENAMED.get(name, name))
        if name in _LIST_FLAGS:
            if key in _MAP_FLAGS:
                item, _, setting = value.partition("=")
                flags.setdefault(key, {})[item] = setting
            else:
                flags.setdefault(key, []).append(value)
        else:
            flags[key] = value
    return flags


def _data_root(settings: Mapping[str, Any]) -> str:
    root = settings.get("data-root") or settings.get("graph") or DEFAULT_DATA_ROOT
    return posixpath.normpath(str(root))


def _within(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


@dataclass(frozen=True)
class DaemonFacts:
    """What the host script says about one daemon: the two facts' data, or why not."""

    config: dict[str, Any] | None
    config_error: str | None
    host: dict[str, Any]


def daemon_facts(
    daemon: Mapping[str, Any],
    file_modes: Sequence[Mapping[str, Any]],
    roles: Mapping[str, Sequence[str]],
    mounts: Sequence[Mapping[str, Any]] | None,
    audit: Mapping[str, Any] | None,
    data_root: str,
    host: str,
) -> DaemonFacts:
    """docker.daemon_config and docker.daemon_host from the parsed sections. The dockerd
    process serving this daemon is the one whose data root holds `data_root` (from docker
    info: with userns-remap it is a subdirectory of the configured one)."""
    config_data, config_error = _daemon_config(daemon, data_root)
    files = [_through_link(f) for f in _merge_files([*daemon["files"], *file_modes], roles)]
    mount = parent = None
    if mounts is not None:
        mount = _containing_mount(mounts, data_root)
        # dockerd bind-mounts its data root onto itself: only a different source than the
        # file system around it makes it a partition of its own
        outside = [m for m in mounts if not _within(str(m.get("target", "")), data_root)]
        parent = _containing_mount(outside, posixpath.dirname(data_root.rstrip("/")) or "/")
    host_data = {
        "host": host,
        "data_root": data_root,
        "data_root_mount": mount,
        "parent_mount": parent,
        "mounts_readable": mounts is not None,
        "files": files,
        "units": _units(daemon["units"]),
        "audit": dict(audit) if audit is not None else None,
        "client_configs": list(daemon["client_configs"]),
    }
    return DaemonFacts(config_data, config_error, host_data)


def _daemon_config(
    daemon: Mapping[str, Any], data_root: str
) -> tuple[dict[str, Any] | None, str | None]:
    candidates = []
    for process in daemon["processes"]:
        flags = parse_dockerd_args(process["args"])
        config_file = str(flags.get("config-file") or DEFAULT_CONFIG_FILE)
        if config_file in daemon["unreadable"]:
            config: dict[str, Any] | None = None
            problem: str | None = f"cannot read {config_file} (audit as root, or with --sudo)"
        else:
            config, problem = _load_config(daemon["configs"].get(config_file), config_file)
        settings = {**(config or {}), **flags}
        if _within(data_root, _data_root(settings)):
            candidates.append((process, flags, config_file, config, problem, settings))
    if not candidates:
        seen = ", ".join(
            f"pid {p['pid']} ({_data_root(parse_dockerd_args(p['args']))})"
            for p in daemon["processes"]
        )
        return None, (
            f"no dockerd process on the host serves the data root {data_root}"
            + (f" (found {seen})" if seen else " (no dockerd process is visible)")
        )
    process, flags, config_file, config, problem, settings = candidates[0]
    if problem is not None:
        return None, problem
    return {
        "pid": process["pid"],
        "uid": process["uid"],
        "args": list(process["args"]),
        "config_file": config_file,
        "config": config,
        "flags": flags,
        "settings": settings,
    }, None


def _load_config(text: str | None, path: str) -> tuple[dict[str, Any] | None, str | None]:
    if text is None:
        return None, None  # no file: every setting has its default
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"{path} is not valid JSON (line {exc.lineno}: {exc.msg})"
    except RecursionError:
        return None, f"{path} is not valid JSON (nested too deep)"
    except ValueError:  # an integer past Python's 4,300-digit conversion limit
        return None, f"{path} is not valid JSON (a number of more than 4,300 digits)"
    if not isinstance(data, dict):
        return None, f"{path} does not hold a JSON object"
    return data, None


def _through_link(entry: dict[str, Any]) -> dict[str, Any]:
    """A symlink judged by what it points to: its target's type, mode and owner, with
    `link` keeping the link text and `symlink` True (dangling links keep their own)."""
    resolved = entry.get("resolved")
    if entry.get("type") != "symlink" or not resolved:
        return {**entry, "symlink": entry.get("type") == "symlink"}
    return {**entry, **resolved, "symlink": True}


def _containing_mount(mounts: Sequence[Mapping[str, Any]], path: str) -> dict[str, Any] | None:
    """The mount the path lives on: the last-mounted one with the longest matching target."""
    best: Mapping[str, Any] | None = None
    for mount in mounts:
        target = str(mount.get("target", ""))
        if _within(path, target) and (best is None or len(target) >= len(best["target"])):
            best = mount
    return dict(best) if best is not None else None


# Unit settings that matter for the daemon's exposure; everything else (Environment= may hold
# proxy credentials) stays on the host.
_UNIT_KEYS = ("ExecStart", "ListenStream", "SocketMode", "SocketUser", "SocketGroup")


def _units(units: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """unit name -> its files and the settings in _UNIT_KEYS, drop-ins applied in order
    (an empty assignment resets a list, as systemd does)."""
    result: dict[str, Any] = {}
    for unit in units:
        entry = result.setdefault(unit["unit"], {"files": [], **{key: [] for key in _UNIT_KEYS}})
        entry["files"].append(unit["path"])
        for line in _logical_lines(unit["lines"]):
            key, sep, value = line.partition("=")
            key = key.strip()
            if not sep or key not in _UNIT_KEYS:
                continue
            value = value.strip()
            if value == "":
                entry[key] = []
            elif key == "ExecStart":
                entry[key].append(_split_command(value))
            else:
                entry[key].append(value)
    return result


def _logical_lines(lines: Iterable[str]) -> list[str]:
    """Unit file lines with comments dropped and backslash continuations joined."""
    joined: list[str] = []
    pending = ""
    for line in lines:
        stripped = line.strip()
        if not pending and (not stripped or stripped[0] in "#;"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        joined.append(pending + stripped)
        pending = ""
    if pending:
        joined.append(pending)
    return joined


def _split_command(value: str) -> list[str]:
    """ExecStart's command line as words (its -@:+! prefixes dropped)."""
    value = value.lstrip("-@:+!")
    try:
        return shlex.split(value)
    except ValueError:
        return value.split()


def host_facts_from(
    outputs: Mapping[str, str],
    roles: Mapping[str, Sequence[str]],
    data_root: str,
    host: str,
) -> DaemonFacts:
    """Both facts from the stdout of the script's four sections (by section name)."""
    daemon = parse_daemon_section(outputs["docker_daemon"])
    modes = parsers.parse_file_modes(outputs["file_modes"])
    mounts: list[dict[str, Any]] | None
    try:
        mounts = [dict(m) for m in parsers.parse_mounts(outputs["mounts"])]
    except FactUnavailable:
        mounts = None
    audit = parsers.parse_audit(outputs["audit"])
    return daemon_facts(daemon, modes, roles, mounts, audit, data_root, host)
