"""The host fact sections: one read-only POSIX sh snippet and one pure parser per `host.*` fact.

The host runner wraps every `Section.script` in a shell function and runs all of them in ONE
`sh -s` process (one SSH exec channel); it captures each section's stdout, stderr and exit status
and hands the stdout to `Section.parse`. Before the snippets it defines `AUDITOR_PATHS`, the
newline-separated list of paths the `file_modes` section stats (see `DEFAULT_PATHS`).

Every snippet is made safe by construction (`snippet`, and the runner in script.py):

- it runs in a subshell of its own (the command substitution in which the runner captures its
  stderr), so its variables, `IFS`, `set -f` and helper functions never leak into the next
  section, and with stdin from /dev/null, so no command can swallow the rest of the script
  that `sh -s` is still reading from the same stdin;
- it sets a fixed `PATH` (a user's own `PATH` could put a look-alike `ps` first, and the sbin
  directories are missing from a non-login SSH session's `PATH`) and `LC_ALL=C`, so tool messages
  the parsers look at are not translated;
- it only reads: no redirection into files other than /dev/null, no package-cache refresh
  (apt's lists are read as they are, `dnf -C`), and tests/unit/test_host_parsers.py greps every
  snippet for writing commands.

Snippets prefix every line they print (`S:`, `F:`, `@rc` ...) so the parsers never have to guess
which command a line came from: command output through `__tag`, files through
`awk '{ print "T:" $0 }'`, a file name (which may hold a newline) through `__put`, never a bare
`printf '%s'` of host text that may hold one. Text read from the host is untrusted and is only
ever parsed; the runner escapes everything the sections print (escaping.py), so a section needs
no escaping of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from auditor.collectors.host import parsers, parsers_access, parsers_system
from auditor.collectors.host.parsers import FactUnavailable

__all__ = [
    "DEFAULT_PATHS", "SECTIONS", "FactUnavailable", "Section", "Shared", "script_for", "snippet",
]  # fmt: skip


@dataclass(frozen=True)
class Shared:
    """Evidence several sections read: run once, before any section, into the shell variable
    `AUDITOR_<NAME>` (its output, empty when the source is absent) and `AUDITOR_<NAME>_RC`
    (its exit status, empty when absent)."""

    name: str
    script: str


@dataclass(frozen=True)
class Section:
    """One host fact: the snippet that prints its raw evidence and the parser that reads it."""

    name: str
    script: str
    parse: Callable[[str], Any]
    description: str
    needs_root: bool = False
    shared: tuple[Shared, ...] = ()


# Paths the file_modes section stats by default: runtime sockets, runtime and orchestrator
# configuration (CIS Docker 3.x, CIS Kubernetes 1.1.x) and the identity/sudo/ssh files (4.5.4).
DEFAULT_PATHS: tuple[str, ...] = (
    # container runtime sockets
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/containerd/containerd.sock",
    "/var/run/crio/crio.sock",
    "/run/podman/podman.sock",
    # Docker daemon configuration and unit files
    "/etc/docker",
    "/etc/docker/daemon.json",
    "/etc/docker/certs.d",
    "/etc/default/docker",
    "/etc/sysconfig/docker",
    "/lib/systemd/system/docker.service",
    "/lib/systemd/system/docker.socket",
    "/usr/lib/systemd/system/docker.service",
    "/usr/lib/systemd/system/docker.socket",
    "/etc/systemd/system/docker.service",
    "/etc/systemd/system/docker.socket",
    "/var/lib/docker",
    "/usr/bin/dockerd",
    # containerd / CRI-O
    "/etc/containerd",
    "/etc/containerd/config.toml",
    "/lib/systemd/system/containerd.service",
    "/usr/lib/systemd/system/containerd.service",
    "/etc/crio/crio.conf",
    # Kubernetes control plane and kubelet
    "/etc/kubernetes/manifests",
    "/etc/kubernetes/manifests/kube-apiserver.yaml",
    "/etc/kubernetes/manifests/kube-controller-manager.yaml",
    "/etc/kubernetes/manifests/kube-scheduler.yaml",
    "/etc/kubernetes/manifests/etcd.yaml",
    "/etc/kubernetes/admin.conf",
    "/etc/kubernetes/super-admin.conf",
    "/etc/kubernetes/scheduler.conf",
    "/etc/kubernetes/controller-manager.conf",
    "/etc/kubernetes/kubelet.conf",
    "/etc/kubernetes/pki",
    "/etc/kubernetes/pki/ca.crt",
    "/var/lib/kubelet/config.yaml",
    "/var/lib/etcd",
    "/etc/cni/net.d",
    # identity, authentication and privilege files
    "/etc/passwd",
    "/etc/shadow",
    "/etc/group",
    "/etc/gshadow",
    "/etc/ssh/sshd_config",
    "/etc/ssh/sshd_config.d",
    "/etc/ssh/ssh_host_rsa_key",
    "/etc/ssh/ssh_host_ecdsa_key",
    "/etc/ssh/ssh_host_ed25519_key",
    "/etc/ssh/ssh_host_rsa_key.pub",
    "/etc/ssh/ssh_host_ecdsa_key.pub",
    "/etc/ssh/ssh_host_ed25519_key.pub",
    "/etc/sudoers",
    "/etc/sudoers.d",
    # scheduled jobs and audit configuration
    "/etc/crontab",
    "/etc/cron.d",
    "/etc/audit/auditd.conf",
    "/etc/audit/rules.d",
    # account database backups, cron and at, bootloader, banners (CIS Linux 1.4, 1.6, 2.4, 7.1)
    "/etc/passwd-",
    "/etc/group-",
    "/etc/shadow-",
    "/etc/gshadow-",
    "/etc/shells",
    "/etc/security/opasswd",
    "/etc/security/opasswd.old",
    "/etc/cron.hourly",
    "/etc/cron.daily",
    "/etc/cron.weekly",
    "/etc/cron.monthly",
    "/etc/cron.allow",
    "/etc/cron.deny",
    "/etc/at.allow",
    "/etc/at.deny",
    "/boot/grub/grub.cfg",
    "/boot/grub2/grub.cfg",
    "/boot/grub2/user.cfg",
    "/etc/motd",
    "/etc/issue",
    "/etc/issue.net",
)

_PREAMBLE = (
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
    "LC_ALL=C\n"
    "export PATH LC_ALL\n"
)


# Shell functions every snippet may call. The runner (script.py) defines them once, before the
# sections, after `NL` (a newline).
HELPERS = r"""
# __tag TAG TEXT: each line of TEXT with TAG before it, printed by builtins alone (a
# `printf | awk` per command output cost the host a fork and an exec). Empty lines are left
# out. TAG becomes part of printf's format: it is a snippet's literal tag, never host text.
# It leaves IFS as it found it and globbing on.
__tag() {
  case $2 in *[!$NL]*) ;; *) return 0 ;; esac  # nothing but newlines: no line to tag
  __tag_ifs=$IFS
  IFS=$NL
  set -f
  # shellcheck disable=SC2059,SC2086
  printf "$1%s\n" $2
  IFS=$__tag_ifs
  set +f
}
# __put TAG VALUE: VALUE (a file name, which may hold newlines) on one line after TAG; each
# newline in it starts a continuation line "+:" that the parsers' line splitter joins back
# (escaping.py), so a name cannot start a line of its own.
__put() {
  case $2 in
    *"$NL"*) ;;
    *) printf '%s%s\n' "$1" "$2"; return 0 ;;
  esac
  __put_v=$2
  printf '%s' "$1"
  while :; do
    case $__put_v in
      *"$NL"*) printf '%s\n+:' "${__put_v%%"$NL"*}"; __put_v=${__put_v#*"$NL"} ;;
      *) break ;;
    esac
  done
  printf '%s\n' "$__put_v"
}
"""


def snippet(body: str) -> str:
    """Wrap a section body: stdin /dev/null, fixed PATH and locale. It is a group, not a
    subshell: the runner already runs each section in one, and a second cost a fork each."""
    # the closing `:` makes the status 0 once the body ran to its end (a last `[ -e x ] && ...`
    # would otherwise leave 1); a non-zero status then means the snippet was cut short
    return "{\n" + _PREAMBLE + body.strip("\n") + "\n:\n} </dev/null"


# The installed package list, read by the packages, updates, reboot and runtimes sections, as
# `dpkg-query -W -f='${Package} ${Version} ${Architecture} ${Status}\n'` prints it. It is read
# from dpkg's status file as package scanners (Trivy, Syft) read it, in half dpkg-query's time:
# grep keeps the four fields, awk joins each package's and leaves out the not-installed ones,
# as dpkg-query does. dpkg-query itself runs when the file is not readable, or when an
# interrupted dpkg left entries in its journal (updates/), which only dpkg applies.
DPKG = Shared(
    "dpkg",
    "{\n"
    + _PREAMBLE
    + r"""f=/var/lib/dpkg/status
if command -v dpkg-query >/dev/null 2>&1 && [ -s "$f" ]; then
  set -- /var/lib/dpkg/updates/[0-9]*
  if [ -r "$f" ] && [ ! -e "$1" ]; then
    o=$(grep -E '^(Package|Version|Architecture|Status): |^$' "$f" | awk '
      function emit() {
        if (p != "" && s !~ / not-installed$/) print p " " v " " a " " s
        p = v = a = s = ""
      }
      $0 == "" { emit(); next }
      $1 == "Package:" { p = $2; next }
      $1 == "Version:" { v = $2; next }
      $1 == "Architecture:" { a = $2; next }
      $1 == "Status:" { s = substr($0, 9) }
      END { emit() }' 2>&1)
  else
    o=$(dpkg-query -W -f='${Package} ${Version} ${Architecture} ${Status}\n' 2>&1)
  fi
  rc=$?
  printf '%s\n%s' "$o" "$rc"
fi
} </dev/null""",
)

_OS = r"""
for f in /etc/os-release /usr/lib/os-release; do
  if [ -r "$f" ]; then
    printf 'file:%s\n' "$f"
    while IFS= read -r l || [ -n "$l" ]; do printf 'osr:%s\n' "$l"; done < "$f"
    break
  fi
done
# uname prints node name, release and machine in this order, none of them holding a space
set -f
# shellcheck disable=SC2046
set -- $(uname -n -r -m)
set +f
printf 'kernel:%s\n' "$2"
printf 'arch:%s\n' "$3"
printf 'hostname:%s\n' "$1"
"""

# Include handling mirrors sshd: patterns are globbed (sorted), relative ones are relative to
# /etc/ssh, included files are inlined where the Include stands, and sshd stops at depth 16.
# For every Match line (in the order sshd reads them) "N SPEC": a connection spec for
# `sshd -T -C` that the block's criteria match (the first non-negated pattern of each, its
# wildcards filled in, an address's network; a Group block takes a member of the group from
# /etc/group or /etc/passwd), or "N -none" when no local account is in the group, "N -limit"
# past 16 blocks. Criteria the block does not name get a user, host and address of no one.
_SSHD_MATCH_AWK = r"""
BEGIN {
  FS = ":"
  while ((getline l < "/etc/group") > 0) {
    split(l, g, ":")
    gname[g[3]] = g[1]
    if (g[4] != "" && !(g[1] in member)) { split(g[4], m, ","); member[g[1]] = m[1] }
  }
  while ((getline l < "/etc/passwd") > 0) {
    split(l, p, ":")
    if ((p[4] in gname) && !(gname[p[4]] in member)) member[gname[p[4]]] = p[1]
  }
  FS = " "
}
function pick(v,   a, n, i) {
  n = split(v, a, ",")
  for (i = 1; i <= n; i++) if (a[i] !~ /^!/) return a[i]
  return ""
}
substr($0, 1, 2) != "L:" { next }
{
  line = substr($0, 3)
  if (line !~ /^[ \t]*[Mm][Aa][Tt][Cc][Hh]([ \t=]|$)/) next
  idx++
  if (idx > 16) { print idx " -limit"; next }
  sub(/^[ \t]*[Mm][Aa][Tt][Cc][Hh][ \t=]*/, "", line)
  n = split(line, w, /[ \t]+/)
  user = "auditor-nobody"; host = "auditor.invalid"; addr = "192.0.2.1"; extra = ""; none = 0
  named = 0
  for (i = 1; i <= n; i++) {
    k = tolower(w[i])
    if (k == "" || k == "all") continue
    if (k ~ /^#/) break
    v = pick(w[++i])
    if (v == "") continue
    if (k == "user") { gsub(/[*?]/, "x", v); user = v; named = 1 }
    else if (k == "group") { if (v in member) { if (!named) user = member[v] } else none = 1 }
    else if (k == "host") { gsub(/[*?]/, "x", v); host = v }
    else if (k == "address" || k == "localaddress") {
      sub(/\/.*/, "", v)
      gsub(/[*?]/, "1", v)
      if (k == "address") addr = v; else extra = extra ",laddr=" v
    }
    else if (k == "localport") extra = extra ",lport=" v
    else if (k == "rdomain") extra = extra ",rdomain=" v
  }
  if (none) print idx " -none"
  else print idx " user=" user ",host=" host ",addr=" addr extra
}
"""

assert "'" not in _SSHD_MATCH_AWK  # it is single-quoted for sh below
_SSHD_CONFIG = (
    "# shellcheck disable=SC2016\n_SSHD_MATCH_SPECS='"
    + _SSHD_MATCH_AWK.strip("\n")
    + "'\n"
    + r"""
sshd=$(command -v sshd 2>/dev/null) || sshd=
if [ -z "$sshd" ]; then
  echo "sshd:absent"
else
  printf 'sshd:%s\n' "$sshd"
  t_ok=
  if out=$("$sshd" -T 2>&1); then
    t_ok=1
    echo "T-rc:0"
    __tag T: "$out"
  else
    printf 'T-rc:%s\n' "$?"
    __tag T-err: "$out"
  fi
  _sshd_walk() {
    if [ "$2" -gt 16 ]; then __put D: "$1"; return 0; fi
    if [ ! -e "$1" ]; then __put N: "$1"; return 0; fi
    if [ ! -r "$1" ]; then __put X: "$1"; return 0; fi
    __put F: "$1"
    # the file read by one awk and split into lines here (dash's `read` costs a syscall a
    # byte); every line keeps its L: tag, so no empty line is lost to the split
    _o=$(awk '{ print "L:" $0 }' "$1")
    IFS=$NL
    set -f
    for _l in $_o; do
      unset IFS
      set +f
      printf '%s\n' "$_l"
      _l=${_l#L:}
      _t=${_l#"${_l%%[![:space:]]*}"}
      case $_t in
        [Ii][Nn][Cc][Ll][Uu][Dd][Ee][[:space:]=]*) ;;
        *) continue ;;
      esac
      _a=${_t#???????}
      _a=${_a#"${_a%%[![:space:]=]*}"}
      set -f
      for _p in $_a; do
        set +f
        case $_p in /*) ;; *) _p=/etc/ssh/$_p ;; esac
        _dir=${_p%/*}
        if [ -d "$_dir" ] && { [ ! -r "$_dir" ] || [ ! -x "$_dir" ]; }; then
          __put X: "$_dir"
          continue
        fi
        for _g in $_p; do
          [ -e "$_g" ] && _sshd_walk "$_g" $(($2 + 1))
        done
      done
      set +f
    done
    unset IFS
    set +f
    __put E: "$1"
  }
  walk=$(_sshd_walk /etc/ssh/sshd_config 0)
  printf '%s\n' "$walk"
  # Each Match block judged as sshd judges a connection it applies to (sshd -T -C)
  specs=
  case $t_ok$walk in
    1*[Mm][Aa][Tt][Cc][Hh]*) specs=$(printf '%s\n' "$walk" | awk "$_SSHD_MATCH_SPECS") ;;
  esac
  if [ -n "$specs" ]; then
    IFS=$NL
    set -f
    for _s in $specs; do
      unset IFS
      printf 'M:%s\n' "$_s"
      _c=${_s#* }
      case $_c in -*) continue ;; esac
      if out=$("$sshd" -T -C "$_c" 2>&1); then
        echo "C-rc:0"
        __tag C: "$out"
      else
        printf 'C-rc:%s\n' "$?"
        __tag C-err: "$out"
      fi
    done
    unset IFS
    set +f
  fi
fi
"""
)

# What `sysctl -a` prints, read as it reads it, as "P:path:value" lines (a parameter the user
# may not read is left out). head, not grep: the kernel clears a buffer the size of each read
# of a sysctl file, and grep reads 96 KiB at a time (256 MB cleared per host; twice head's CPU
# with 25 hosts at once). head names each file in a "==> path <==" line and puts a blank line
# before every name but the first, which awk tells from an empty value by what follows it.
# Values are the kernel's or root's own, so none can pose as such a line to forge another.
_SYSCTL = r"""
if [ -d /proc/sys ]; then
  find /proc/sys -type f -exec head -v -n 100000 {} + 2>/dev/null | awk '
    pending { pending = 0; if ($0 !~ /^==> \/proc\/sys\/.* <==$/) print "P:" f ":" }
    /^==> \/proc\/sys\/.* <==$/ { f = substr($0, 5, length($0) - 8); next }
    $0 == "" { pending = 1; next }
    { print "P:" f ":" $0 }
    END { if (pending) print "P:" f ":" }'
else
  echo "@unavailable"
fi
"""

_MOUNTS = r"""
for f in /proc/self/mounts /proc/mounts /etc/mtab; do
  if [ -r "$f" ]; then
    printf 'file:%s\n' "$f"
    awk '{ print "M:" $0 }' "$f"
    break
  fi
done
"""

_FILE_MODES = r"""
if [ "${AUDITOR_PATHS+set}" != set ]; then
  echo "@no-paths-variable"
elif ! command -v stat >/dev/null 2>&1; then
  echo "@no-stat"
else
  set -f
  IFS='
'
  # A process per path costs more than everything else here: one stat answers for every
  # plain path that exists, and an absent path below a searchable directory needs none. Flags
  # (one character per path) remember each path's way, so a file that appears or vanishes
  # meanwhile cannot shift the batch's lines onto another path.
  flags=
  set --
  for p in $AUDITOR_PATHS; do
    d=${p%/*}
    if [ -L "$p" ]; then
      flags="${flags}1"
    elif [ -e "$p" ]; then
      flags="${flags}b"
      set -- "$@" "$p"
    else
      # up to the nearest ancestor that is there: a searchable directory means none below is
      while [ -n "$d" ] && [ ! -e "$d" ] && [ ! -L "$d" ]; do d=${d%/*}; done
      if [ -d "${d:-/}" ] && [ -x "${d:-/}" ]; then
        flags="${flags}a"
      else
        flags="${flags}1"
      fi
    fi
  done
  batch=
  if [ $# -gt 0 ] && ! batch=$(stat -c '%f %u %g %U %G' -- "$@" 2>/dev/null); then
    flags=$(printf '%s' "$flags" | tr 'b' '1')
  fi
  for p in $AUDITOR_PATHS; do
    printf 'P:%s\n' "$p"
    f=${flags%"${flags#?}"}
    flags=${flags#?}
    if [ "$f" = b ]; then
      printf 'S:%s\n' "${batch%%"$IFS"*}"
      batch=${batch#*"$IFS"}
      continue
    fi
    if [ "$f" = a ]; then
      echo "E:No such file or directory"
      continue
    fi
    if o=$(stat -c '%f %u %g %U %G' -- "$p" 2>&1); then
      printf 'S:%s\n' "$o"
      if [ -L "$p" ]; then
        printf 'L:'
        printf '%s' "$(readlink -- "$p")" | tr '\n' '?'
        echo
        if o=$(stat -L -c '%f %u %g %U %G' -- "$p" 2>&1); then
          printf 'T:%s\n' "$o"
        else
          printf 'TE:%s\n' "${o%%"$IFS"*}"
        fi
      fi
    else
      printf 'E:%s\n' "${o%%"$IFS"*}"
    fi
  done
fi
"""

_PACKAGES = r"""
if [ -n "$AUDITOR_DPKG_RC" ]; then
  echo "manager:dpkg"
  printf '@rc %s\n' "$AUDITOR_DPKG_RC"
  __tag D: "$AUDITOR_DPKG"
elif command -v rpm >/dev/null 2>&1; then
  echo "manager:rpm"
  o=$(rpm -qa --qf '%{NAME} %|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE} %{ARCH}\n' 2>&1)
  printf '@rc %s\n' "$?"
  __tag R: "$o"
else
  echo "manager:none"
fi
"""

# Pending apt updates are read from the local package lists, never through apt-get, whose
# solver rewrites its binary caches as root. dnf as a non-root user creates a private cache
# under /var/tmp, so it only runs as root, and only from its cache (-C).
_UPDATES = r"""
if command -v apt-get >/dev/null 2>&1 && [ -d /var/lib/apt/lists ]; then
  echo "manager:apt"
  printf 'now:%s\n' "$(date +%s)"
  set --
  for f in /var/lib/apt/lists /var/lib/apt/periodic/update-success-stamp; do
    [ -e "$f" ] && set -- "$@" "$f"
  done
  [ $# -gt 0 ] && stat -c 'mtime:%Y' -- "$@" 2>/dev/null
  n=0
  for f in /var/lib/apt/lists/*_Packages*; do
    [ -e "$f" ] && n=$((n + 1))
  done
  printf 'lists:%s\n' "$n"
  # Security updates straight from the local lists: apt-get's solver would rebuild (and as
  # root rewrite) its binary cache. One awk joins the installed packages (first, as dpkg
  # lists them: no package name is "L" or ends in a colon) with the versions the security
  # archive offers (grep keeps their Package and Version lines, a tenth of the lines, far
  # faster than awk); the parser compares Debian versions.
  h=/usr/lib/apt/apt-helper
  if [ -x "$h" ]; then
    {
      printf '%s\n' "$AUDITOR_DPKG"
      for f in /var/lib/apt/lists/*security*_Packages*; do
        [ -e "$f" ] || continue
        printf 'L %s\n' "$f"
        "$h" cat-file "$f" 2>/dev/null | grep -E '^(Package|Version): '
      done
    } | awk '$1 == "L" { print "S:" $2; next }
             $1 == "Package:" { p = $2; next }
             $1 == "Version:" { if ((p in v) && v[p] != $2) print "C:" p " " v[p] " " $2; next }
             $4 " " $5 " " $6 == "install ok installed" { v[$1] = $2 }'
  else
    echo "@no-apt-helper"
  fi
elif command -v dnf >/dev/null 2>&1 || command -v yum >/dev/null 2>&1; then
  m=dnf
  command -v dnf >/dev/null 2>&1 || m=yum
  printf 'manager:%s\n' "$m"
  printf 'now:%s\n' "$(date +%s)"
  set --
  for f in /var/cache/dnf/*/repodata/repomd.xml /var/cache/yum/*/*/*/repomd.xml \
    /var/cache/libdnf5/*/repodata/repomd.xml; do
    [ -e "$f" ] && set -- "$@" "$f"
  done
  [ $# -gt 0 ] && stat -c 'mtime:%Y' -- "$@" 2>/dev/null
  if [ "$AUDITOR_DNF" != yes ]; then
    echo "@dnf-not-allowed"
  elif [ "$(id -u)" != 0 ]; then
    echo "@not-root"
  else
    o=$("$m" -C -q check-update 2>&1)
    printf '@rc %s\n' "$?"
    __tag U: "$o"
    o=$("$m" -C -q --security check-update 2>&1)
    printf '@src %s\n' "$?"
    __tag Z: "$o"
  fi
else
  echo "manager:none"
fi
"""

_SYSTEMD = r"""
if ! command -v systemctl >/dev/null 2>&1; then
  echo "@no-systemctl"
elif [ ! -d /run/systemd/system ]; then
  echo "@not-booted"
else
  o=$(systemctl list-units --all --type=service,socket,timer --no-legend --plain --no-pager 2>&1)
  printf '@units-rc %s\n' "$?"
  __tag U: "$o"
  o=$(systemctl list-unit-files --type=service,socket,timer --no-legend --no-pager 2>&1)
  printf '@files-rc %s\n' "$?"
  __tag F: "$o"
fi
"""

_AUDIT = r"""
if command -v auditctl >/dev/null 2>&1; then
  echo "auditctl:present"
  o=$(auditctl -s 2>&1)
  printf '@s-rc %s\n' "$?"
  __tag S: "$o"
  o=$(auditctl -l 2>&1)
  printf '@l-rc %s\n' "$?"
  __tag L: "$o"
else
  echo "auditctl:absent"
fi
if [ ! -d /etc/audit ]; then
  echo "N:/etc/audit"
elif [ ! -r /etc/audit ] || [ ! -x /etc/audit ]; then
  echo "X:/etc/audit"
else
  d=/etc/audit/rules.d
  if [ -d "$d" ] && { [ ! -r "$d" ] || [ ! -x "$d" ]; }; then
    printf 'X:%s\n' "$d"
  fi
  set --
  for f in /etc/audit/rules.d/*.rules /etc/audit/audit.rules; do
    [ -e "$f" ] || continue
    if [ -r "$f" ]; then set -- "$@" "$f"; else __put X: "$f"; fi
  done
  # one awk for every readable rules file (an empty one prints no F: line)
  [ $# -gt 0 ] && awk '
    FNR == 1 { f = FILENAME; gsub(/\n/, "\n+:", f); print "F:" f }
    { print "R:" $0 }' "$@"
fi
"""

# Only fields 1, 3, 4, 6 and 7 leave the host, plus a class for field 2 (never the field itself).
_ACCOUNTS = r"""
set --
if [ -r /etc/passwd ]; then set -- /etc/passwd; else echo "X:/etc/passwd"; fi
if [ -r /etc/group ]; then set -- "$@" /etc/group; else echo "X:/etc/group"; fi
[ $# -gt 0 ] && awk -F: '
  FILENAME == "/etc/group" { print "G:" $1 ":" $3 ":" $4; next }
  {
    c = "hash"
    if ($2 == "x") c = "shadow"
    else if ($2 == "") c = "empty"
    else if ($2 ~ /^[!*]/) c = "locked"
    print "U:" $1 ":" c ":" $3 ":" $4 ":" $6 ":" $7
  }' "$@"
"""

# The hash never leaves awk: only the user name and its class are printed.
_SHADOW = r"""
if [ ! -e /etc/shadow ]; then
  echo "N:/etc/shadow"
elif [ ! -r /etc/shadow ]; then
  echo "X:/etc/shadow"
else
  awk -F: '{
    c = "set"
    if ($2 == "") c = "empty"
    else if ($2 ~ /^[!*]/) c = "locked"
    print "H:" $1 " " c
    # the hash method id only ($y$ yescrypt, $6$ sha512 ...): "des" without one
    h = $2
    sub(/^[!*]+/, "", h)
    m = "none"
    if (h ~ /^[$][^$]+[$]/) { split(h, a, "$"); m = a[2] }
    else if (h != "") m = "des"
    print "A:" $1 ":" $3 ":" $4 ":" $5 ":" $6 ":" $7 ":" $8 ":" m
  }' /etc/shadow
fi
"""

# _stat_each PATHS: for each of the newline-separated PATHS (each read from one line of a
# file, so none holds a newline), in order, "S:<%f %u %g %U %G>", "S:absent" or "E:<error>";
# one stat for all that exist, one each only when that one failed (a path vanished meanwhile).
_STAT_EACH = r"""
_stat_each() {
  _ok=
  _flags=
  set -f
  IFS=$NL
  for _p in $1; do
    if [ -e "$_p" ]; then _ok="$_ok$_p$NL"; _flags="${_flags}b"; else _flags="${_flags}a"; fi
  done
  _st=
  # shellcheck disable=SC2086
  [ -n "$_ok" ] && { _st=$(stat -L -c '%f %u %g %U %G' -- $_ok 2>/dev/null) || _st=@; }
  for _p in $1; do
    _f=${_flags%"${_flags#?}"}
    _flags=${_flags#?}
    if [ "$_f" = a ]; then
      echo "S:absent"
    elif [ "$_st" != @ ]; then
      printf 'S:%s\n' "${_st%%"$NL"*}"
      _st=${_st#*"$NL"}
    elif _r=$(stat -L -c '%f %u %g %U %G' -- "$_p" 2>&1); then
      printf 'S:%s\n' "$_r"
    else
      printf 'E:%s\n' "${_r%%"$NL"*}"
    fi
  done
  unset IFS
  set +f
}
"""

# login.defs as shadow-utils reads it: "NAME VALUE" lines, the last definition wins.
_LOGIN_DEFS = r"""
f=/etc/login.defs
if [ ! -e "$f" ]; then
  echo "N:$f"
elif [ ! -r "$f" ]; then
  echo "X:$f"
else
  awk '$1 !~ /^#/ && NF > 0 { print "D:" $1 " " $2 }' "$f"
fi
"""

# The PAM stacks that decide su, passwords and logins, and the pwquality/faillock settings.
_PAM = r"""
set --
for f in /etc/pam.d/su /etc/pam.d/common-auth /etc/pam.d/common-password \
  /etc/pam.d/common-account /etc/pam.d/system-auth /etc/pam.d/password-auth \
  /etc/security/pwquality.conf /etc/security/pwquality.conf.d/*.conf \
  /etc/security/faillock.conf; do
  [ -e "$f" ] || continue
  if [ -r "$f" ]; then set -- "$@" "$f"; else __put X: "$f"; fi
done
[ -d /etc/pam.d ] || echo "N:/etc/pam.d"
[ $# -gt 0 ] && awk '
  FNR == 1 { f = FILENAME; gsub(/\n/, "\n+:", f); print "F:" f }
  $1 !~ /^#/ && NF > 0 { print "L:" $0 }' "$@"
"""

# umask and TMOUT as the login shells set them (login.defs UMASK is in login_defs).
_SHELL_DEFAULTS = r"""
set --
for f in /etc/profile /etc/bash.bashrc /etc/profile.d/*.sh; do
  [ -e "$f" ] || continue
  if [ -r "$f" ]; then set -- "$@" "$f"; else __put X: "$f"; fi
done
[ $# -gt 0 ] && awk '
  FNR == 1 { f = FILENAME; gsub(/\n/, "\n+:", f); print "F:" f }
  /^[ \t]*(umask[ \t]|(readonly[ \t]+|export[ \t]+)?TMOUT=)/ { print "L:" $0 }' "$@"
"""

# root's PATH as su - (ENV_SUPATH) and root's own files set it, and each absolute directory
# named in it: its type, mode and owner.
_ROOT_PATH = (
    _STAT_EACH
    + r"""
set --
[ -r /etc/login.defs ] && set -- /etc/login.defs
# root's files cannot even be seen to exist from outside a /root others may not search
[ -d /root ] && [ ! -x /root ] && echo "X:/root"
for f in /etc/environment /root/.profile /root/.bashrc /root/.bash_profile; do
  [ -e "$f" ] || continue
  if [ -r "$f" ]; then set -- "$@" "$f"; else echo "X:$f"; fi
done
# one awk: each PATH assignment as "P:FILE VALUE", then every absolute directory once as "D:"
o=
[ $# -gt 0 ] && o=$(awk '
  function add(v,   n, d, i) {
    print "P:" FILENAME " " v
    n = split(v, d, ":")
    for (i = 1; i <= n; i++)
      if (d[i] ~ /^\// && !(d[i] in seen)) { seen[d[i]] = 1; dir[++nd] = d[i] }
  }
  FILENAME == "/etc/login.defs" {
    if ($1 == "ENV_SUPATH") { v = $2; sub(/^PATH=/, "", v); add(v) }
    next
  }
  /^[ \t]*(export[ \t]+)?PATH=/ {
    v = $0
    sub(/^[ \t]*(export[ \t]+)?PATH=/, "", v)
    gsub(/["\047]/, "", v)
    sub(/[ \t;].*$/, "", v)
    add(v)
  }
  END { for (i = 1; i <= nd; i++) print "D:" dir[i] }' "$@")
printf '%s\n' "$o"
dirs=
IFS=$NL
set -f
for l in $o; do
  case $l in D:*) dirs="$dirs${l#D:}$NL" ;; esac
done
unset IFS
set +f
_stat_each "$dirs"
"""
)

# Home directories of the accounts that can log in (a shell listed in /etc/shells, not
# nologin): "U:name:uid:home" lines, then one stat line per home in the same order.
_HOMES = (
    _STAT_EACH
    + r"""
if [ ! -r /etc/passwd ]; then
  echo "X:/etc/passwd"
else
  users=$(awk -F: '
    FILENAME == "/etc/shells" { if ($0 ~ /^\// && $0 !~ /nologin$/) ok[$0] = 1; next }
    ($7 in ok) && ++n <= 500 { print $1 ":" $3 ":" $6 }
    END { if (n > 500) print "@limit 500" }' /etc/shells /etc/passwd 2>/dev/null)
  case $users in
    *"@limit 500") echo "@limit 500"; users=${users%"@limit 500"} ;;
  esac
  __tag U: "$users"
  homes=
  IFS=$NL
  set -f
  for l in $users; do homes="$homes${l#*:*:}$NL"; done
  unset IFS
  set +f
  _stat_each "$homes"
fi
"""
)

# Core dump limits (pam_limits) and systemd-coredump's storage.
_CORE_DUMPS = r"""
set --
for f in /etc/security/limits.conf /etc/security/limits.d/*.conf /etc/systemd/coredump.conf \
  /etc/systemd/coredump.conf.d/*.conf; do
  [ -e "$f" ] || continue
  if [ -r "$f" ]; then set -- "$@" "$f"; else __put X: "$f"; fi
done
[ -x /lib/systemd/systemd-coredump ] || [ -x /usr/lib/systemd/systemd-coredump ] &&
  echo "coredump:installed"
[ $# -gt 0 ] && awk '
  FNR == 1 { f = FILENAME; gsub(/\n/, "\n+:", f); print "F:" f }
  $1 !~ /^#/ && NF > 0 { print "L:" $0 }' "$@"
"""

# sudo's own rules: @includedir/#includedir skips names ending in "~" or containing ".",
# @include/#include paths are relative to the including file's directory, 128 levels at most.
_SUDOERS = r"""
_sudo_walk() {
  if [ "$2" -gt 128 ]; then __put D: "$1"; return 0; fi
  if [ ! -e "$1" ]; then __put N: "$1"; return 0; fi
  if [ ! -r "$1" ]; then __put X: "$1"; return 0; fi
  __put F: "$1"
  # as in the sshd_config walk: one awk reads the file, the shell splits its tagged lines
  _o=$(awk '{ print "L:" $0 }' "$1")
  IFS=$NL
  set -f
  for _l in $_o; do
    unset IFS
    set +f
    printf '%s\n' "$_l"
    _l=${_l#L:}
    _t=${_l#"${_l%%[![:space:]]*}"}
    case $_t in
      [#@]include[[:space:]]*|[#@]includedir[[:space:]]*) ;;
      *) continue ;;
    esac
    _k=${_t%%[[:space:]]*}
    _a=${_t#"$_k"}
    _a=${_a#"${_a%%[![:space:]]*}"}
    _a=${_a%"${_a##*[![:space:]]}"}
    _a=${_a#\"}
    _a=${_a%\"}
    case $_a in /*) ;; *) _a=${1%/*}/$_a ;; esac
    case $_k in
      *dir)
        if [ ! -d "$_a" ]; then
          __put N: "$_a"
        elif [ ! -r "$_a" ] || [ ! -x "$_a" ]; then
          __put X: "$_a"
        else
          for _g in "$_a"/*; do
            case ${_g##*/} in *~|*.*) continue ;; esac
            [ -f "$_g" ] && _sudo_walk "$_g" $(($2 + 1))
          done
        fi
        ;;
      *) _sudo_walk "$_a" $(($2 + 1)) ;;
    esac
  done
  unset IFS
  set +f
  __put E: "$1"
}
_sudo_walk /etc/sudoers 0
"""

# Sockets from the kernel's tables in /proc/net (hex addresses, states and inodes: no text any
# process chose; `ss -p` printed process names raw, and `ss -e` cgroup names, which a user can
# pick). Their owners: the processes whose /proc/PID/fd links name a listening socket's inode
# (GNU find; another user's process is seen by root only), named from /proc/PID/comm by grep,
# which puts the file name before each line, so a name holding a newline cannot pass for
# another process's.
_LISTENING = r"""
echo "source:proc"
set --
for f in tcp tcp6 udp udp6; do
  [ -r "/proc/net/$f" ] && set -- "$@" "/proc/net/$f"
done
# listening TCP (state 0A) and bound UDP (07) sockets only, each line after its table's name
socks=
[ $# -gt 0 ] && socks=$(awk '
  FNR == 1 { t = substr(FILENAME, 11); s = t ~ /^tcp/ ? "0A" : "07"; next }
  $4 == s { print t " " $0 }' "$@")
__tag N: "$socks"
set -f
IFS=$NL
inodes=
for l in $socks; do
  IFS=' '
  # shellcheck disable=SC2086
  set -- $l
  inodes="$inodes ${11}"
done
unset IFS
set +f
if [ -n "$inodes" ] && find /proc/self/fd -maxdepth 0 -printf '' 2>/dev/null; then
  owners=$(find /proc/[0-9]*/fd -lname 'socket:\[*' -printf '%h %l\n' 2>/dev/null |
    awk -v want="$inodes" '
    BEGIN { n = split(want, w, " "); for (i = 1; i <= n; i++) k["socket:[" w[i] "]"] = 1 }
    $2 in k { split($1, p, "/"); print p[3] " " substr($2, 9, length($2) - 9) }')
  __tag I: "$owners"
  seen=
  set --
  IFS=$NL
  for l in $owners; do
    case " $seen " in *" ${l%% *} "*) continue ;; esac
    seen="$seen ${l%% *}"
    set -- "$@" "/proc/${l%% *}/comm"
  done
  unset IFS
  [ $# -gt 0 ] && __tag c: "$(grep -s -H '' "$@")"
fi
"""

# ps escapes control characters in comm and args; /proc/PID/cgroup is read in one grep.
# "self" is the pid of this sh: the parser drops it and its children (ps, grep, awk ...).
_PROCESSES = r"""
printf 'self:%s\n' "$$"
if command -v ps >/dev/null 2>&1 && o=$(ps -eo pid=,ppid=,uid=,user:64=,args= 2>/dev/null); then
  __tag A: "$o"
  __tag C: "$(ps -eo pid=,comm= 2>/dev/null)"
else
  echo "@no-ps"
  __tag c: "$(grep -s '' /proc/[0-9]*/comm)"
  __tag s: "$(grep -s -e '^Uid:' -e '^PPid:' /proc/[0-9]*/status)"
fi
__tag G: "$(grep -s '' /proc/[0-9]*/cgroup)"
"""

# Each entry: runtime name, the binaries that mean "installed", the process names (comm, at most
# 15 characters) that mean "running". `--version` only prints; it never contacts a daemon.
_RUNTIMES = r"""
PATH=$PATH:/opt/bin:/snap/bin:/usr/libexec/docker
procs=$(cat /proc/[0-9]*/comm 2>/dev/null)
nl='
'
_to=
command -v timeout >/dev/null 2>&1 && _to="timeout 5"
found=
hinted=
for spec in \
  "docker|dockerd docker|dockerd|docker moby" \
  "containerd|containerd|containerd|containerd" \
  "podman|podman|podman conmon|podman" \
  "cri-o|crio|crio|cri-o" \
  "runc|runc|runc|runc containerd" \
  "kubelet|kubelet|kubelet|kube" \
  "kube-apiserver|kube-apiserver|kube-apiserver|kube" \
  "kube-controller-manager|kube-controller-manager|kube-controller|kube" \
  "kube-scheduler|kube-scheduler|kube-scheduler|kube" \
  "kube-proxy|kube-proxy|kube-proxy|kube" \
  "etcd|etcd|etcd|etcd" \
  "k3s|k3s|k3s k3s-server k3s-agent|k3s"
do
  name=${spec%%|*}
  rest=${spec#*|}
  bins=${rest%%|*}
  rest=${rest#*|}
  comms=${rest%%|*}
  hints=${rest#*|}
  printf 'N:%s\n' "$name"
  for b in $bins; do
    # the first executable file of that name on PATH, as `command -v` but in this shell
    p=
    set -f
    IFS=:
    for d in $PATH; do
      if [ -f "${d:-.}/$b" ] && [ -x "${d:-.}/$b" ]; then
        p=${d:-.}/$b
        break
      fi
    done
    unset IFS
    set +f
    if [ -n "$p" ]; then
      printf 'B:%s %s\n' "$name" "$p"
      found="$found$name $p$nl"
      hinted="$hinted $hints"
      break
    fi
  done
  for c in $comms; do
    case "$nl$procs$nl" in
      *"$nl$c$nl"*) printf 'R:%s %s\n' "$name" "$c" ;;
    esac
  done
done
# The version of a packaged binary is its package's (what security trackers match, and no
# Go runtime to start: dockerd --version alone costs 80 ms); the others answer --version.
# owners: one "PATH PACKAGE" line per packaged binary; K: lines give the packages' versions.
# A binary's file list is looked for first among the installed packages named like its
# runtime (docker.io, docker-ce, containerd.io ...); all of them (7 MB on a desktop-sized
# host) are read only for a binary none of those holds.
owners=
if [ -n "$found" ] && [ -n "$AUDITOR_DPKG_RC" ] && [ -d /var/lib/dpkg/info ]; then
  lists=$(printf '%s\n' "$AUDITOR_DPKG" | awk -v hints="$hinted" '
    BEGIN { n = split(hints, h, " ") }
    { for (i = 1; i <= n; i++) if (index($1, h[i])) {
        print "/var/lib/dpkg/info/" $1 ".list"; print "/var/lib/dpkg/info/" $1 ":" $3 ".list"
        break
    } }')
  set -f
  IFS=$nl
  set --
  for line in $found; do set -- "$@" -e "${line#* }"; done
  # shellcheck disable=SC2086
  listed=$(grep -s -H -x -F "$@" $lists)$nl
  set --
  for line in $found; do
    case "$nl$listed" in
      *".list:${line#* }$nl"*) ;;
      *) set -- "$@" -e "${line#* }" ;;
    esac
  done
  set +f
  [ $# -gt 0 ] && listed="$listed$(grep -s -H -x -F "$@" /var/lib/dpkg/info/*.list)"
  set -f
  set --
  for line in $listed; do
    pkg=${line%%.list:/*}
    pkg=${pkg##*/}
    owners="$owners${line#*.list:} $pkg$nl"
    set -- "$@" "$pkg"
  done
  IFS=' '
  set +f
  # a list file is named PACKAGE.list, or PACKAGE:ARCH.list for a Multi-Arch: same package
  [ $# -gt 0 ] && printf '%s\n' "$AUDITOR_DPKG" | awk -v want="$*" '
    BEGIN { n = split(want, w, " "); for (i = 1; i <= n; i++) k[w[i]] = 1 }
    ($1 in k) || (($1 ":" $3) in k) { print "K:" $1 " " $2 }'
elif [ -n "$found" ] && command -v rpm >/dev/null 2>&1; then
  q='%{NAME} %|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\n'
  IFS=$nl
  for line in $found; do
    o=$(rpm -qf --qf "$q" -- "${line#* }" 2>/dev/null) || continue
    printf 'K:%s\n' "$o"
    owners="$owners${line#* } ${o%% *}$nl"
  done
  IFS=' '
fi
IFS=$nl
for line in $found; do
  name=${line%% *}
  p=${line#* }
  owner=
  for o in $owners; do
    case $o in "$p "*) owner=${o#"$p "} ;; esac
  done
  if [ -n "$owner" ]; then
    printf 'P:%s %s\n' "$name" "$owner"
  else
    IFS=' '
    # shellcheck disable=SC2086
    v=$($_to "$p" --version 2>&1 | head -n 1)
    IFS=$nl
    printf 'V:%s %s\n' "$name" "$v"
  fi
done
IFS=' '
"""

_KERNEL_SECURITY = r"""
# securityfs, once mounted, fills /sys/kernel/security, an empty directory before
set -- /sys/kernel/security/*
if [ -e "$1" ]; then echo "securityfs:mounted"; else echo "securityfs:absent"; fi
awk '/^Seccomp:/ { print "seccomp:" $2 }' /proc/self/status
[ -d /sys/module ] && echo "sysfs:present"
# the one-line files below are read by the shell: a `cat` each cost a fork and an exec
f=/sys/module/apparmor/parameters/enabled
if [ -r "$f" ]; then
  v=
  IFS= read -r v < "$f" || :
  printf 'aa-enabled:%s\n' "$v"
fi
p=/sys/kernel/security/apparmor/profiles
if [ -r "$p" ]; then
  echo "aa-profiles:readable"
  awk '{ n[$NF]++ } END { for (m in n) print "aa-mode:" m " " n[m] }' "$p"
elif [ -e "$p" ]; then
  echo "aa-profiles:unreadable"
fi
f=/sys/fs/selinux/enforce
if [ -r "$f" ]; then
  v=
  IFS= read -r v < "$f" || :
  printf 'se-enforce:%s\n' "$v"
fi
if [ -r /etc/selinux/config ]; then
  awk -F= '$1 == "SELINUX" { print "se-config:" $2 }' /etc/selinux/config
fi
for k in lockdown lsm; do
  f=/sys/kernel/security/$k
  if [ -r "$f" ]; then
    v=
    IFS= read -r v < "$f" || :
    printf '%s:%s\n' "$k" "$v"
  fi
done
"""

_HARDWARE = r"""
# as in kernel_security: securityfs, once mounted, fills /sys/kernel/security
set -- /sys/kernel/security/*
if [ -e "$1" ]; then echo "securityfs:mounted"; else echo "securityfs:absent"; fi
[ -d /sys/class ] && echo "sysfs:present"
if [ -d /sys/firmware/efi ]; then
  echo "efi:yes"
  v=/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c
  if [ -r "$v" ]; then
    printf 'sb:%s\n' "$(od -An -t u1 "$v" | tr -s ' \n' '  ')"
  elif [ -e "$v" ]; then
    echo "sb:unreadable"
  else
    set -- /sys/firmware/efi/efivars/*
    if [ -e "$1" ]; then echo "sb:absent"; else echo "sb:no-efivars"; fi
  fi
else
  echo "efi:no"
fi
if [ -e /sys/class/tpm/tpm0 ]; then
  echo "tpm:yes"
  f=/sys/class/tpm/tpm0/tpm_version_major
  if [ -r "$f" ]; then
    v=
    IFS= read -r v < "$f" || :
    printf 'tpm-major:%s\n' "$v"
  fi
fi
[ -e /dev/tpmrm0 ] && echo "tpmrm:yes"
[ -e /sys/kernel/security/tpm0/binary_bios_measurements ] && echo "bios-log:yes"
[ -e /sys/kernel/security/ima/ascii_runtime_measurements ] && echo "ima-log:yes"
"""

_FIM = r"""
nl='
'
readable=
p=$(command -v aide 2>/dev/null) && printf 'bin:%s\n' "$p"
if [ ! -d /var/lib/aide ]; then
  echo "dbdir:absent"
elif [ ! -r /var/lib/aide ] || [ ! -x /var/lib/aide ]; then
  echo "dbdir:unreadable"
else
  echo "dbdir:readable"
  for f in /var/lib/aide/aide.db*; do
    [ -e "$f" ] && __put db: "$f"
  done
fi
for d in /etc/cron.d /etc/cron.hourly /etc/cron.daily /etc/cron.weekly /etc/cron.monthly \
  /var/spool/cron/crontabs /var/spool/cron; do
  [ -d "$d" ] || continue
  if [ ! -r "$d" ] || [ ! -x "$d" ]; then
    printf 'X:%s\n' "$d"
    continue
  fi
  for f in "$d"/*; do
    [ -f "$f" ] || continue
    if [ -r "$f" ]; then
      readable="$readable$f$nl"
    else
      __put X: "$f"
    fi
  done
done
[ -r /etc/crontab ] && readable="$readable/etc/crontab$nl"
# one grep for them all: it names the files that mention aide, in the order given
set -f
IFS=$nl
# shellcheck disable=SC2013,SC2086
[ -n "$readable" ] && for f in $(grep -l -i -s -- aide $readable); do printf 'cron:%s\n' "$f"; done
unset IFS
set +f
for f in /etc/systemd/system/*.wants/*aide*.timer; do
  [ -e "$f" ] && __put timer: "$f"
done
"""

_REBOOT = r"""
if [ -r /proc/sys/kernel/osrelease ]; then
  r=
  IFS= read -r r < /proc/sys/kernel/osrelease || :
else
  r=$(uname -r)
fi
printf 'running:%s\n' "$r"
if [ -e /var/run/reboot-required ]; then
  echo "flag:present"
  [ -r /var/run/reboot-required.pkgs ] && awk '{ print "pkg:" $0 }' /var/run/reboot-required.pkgs
elif [ -d /var/run ]; then
  echo "flag:absent"
fi
for f in /boot/vmlinuz-* /boot/vmlinux-*; do
  [ -e "$f" ] && __put boot: "${f#/boot/vmlinu?-}"
done
if [ -n "$AUDITOR_DPKG_RC" ]; then
  printf '%s\n' "$AUDITOR_DPKG" |
    awk '$1 ~ /^linux-image-[0-9]/ && $NF == "installed" && $(NF-1) == "ok" { print "deb:" $1 }'
elif command -v rpm >/dev/null 2>&1; then
  rpm -q --qf '%{VERSION}-%{RELEASE}.%{ARCH}\n' kernel kernel-core kernel-uek 2>/dev/null |
    awk 'NF == 1 { print "rpm:" $0 }'
fi
"""


# ---------------------------------------------------------------- file system, services, logging

# One bounded pass of GNU find over the local file systems: mount points of disk-backed types
# (pseudo, network and in-memory file systems left out), each with -xdev, runtime storage and
# pseudo trees pruned. It prints only what the checks need (world-writable files and
# directories without the sticky bit, files whose owner or group has no account, set-uid and
# set-gid files) and one "." per other entry, which an awk counts for the entry budget; the
# time budget is timeout(1)'s. Owners are told apart by -uid/-gid tests against the accounts
# getent lists (-nouser costs a passwd lookup per file: 3x the scan). A name holding a newline
# is printed as its directory and inode (a directory's name holding one: device and inode
# only), so no name can forge a record.
_FS_SCAN = r"""
printf 'uid:%s\n' "$(id -u)"
printf 'budget:%s %s\n' "$AUDITOR_SCAN_SECONDS" "$AUDITOR_SCAN_ENTRIES"
if ! find / -maxdepth 0 -printf '' 2>/dev/null; then
  echo "@no-gnu-find"
else
  starts=$(awk '
    $3 == "overlay" && $2 != "/" { next }
    $3 ~ /^(proc|sysfs|devtmpfs|devpts|tmpfs|ramfs|cgroup|cgroup2|securityfs|debugfs|tracefs)$/ ||
    $3 ~ /^(pstore|bpf|mqueue|hugetlbfs|configfs|fusectl|binfmt_misc|autofs|efivarfs|nsfs)$/ ||
    $3 ~ /^(rpc_pipefs|nfsd|squashfs|iso9660|udf|nfs|nfs4|cifs|smb3|9p|fuse|fuse\..*)$/ { next }
    $2 ~ /\\012/ { next }
    { m = $2; gsub(/\\040/, " ", m); gsub(/\\011/, "\t", m); gsub(/\\134/, "\\", m); print m }
  ' /proc/self/mounts 2>/dev/null)
  [ -n "$starts" ] || starts=/
  # the data roots of running runtimes (root's processes only: anyone can name a process
  # dockerd) and daemon.json's: image layers and container files are not the host's own
  roots=$(ps -eo uid=,comm=,args= 2>/dev/null | awk '
    $1 == 0 && ($2 == "dockerd" || $2 == "containerd") {
      for (i = 3; i <= NF; i++) {
        if ($i ~ /^--(data-root|root)=/) { v = $i; sub(/^[^=]*=/, "", v); print v }
        else if (($i == "--data-root" || $i == "--root" || $i == "-g") && i < NF) print $(i + 1)
      }
    }')
  if [ -r /etc/docker/daemon.json ]; then
    dj=$(sed -n 's/.*"data-root"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' \
      /etc/docker/daemon.json)
    roots="$roots$NL$dj"
  fi
  set -f
  IFS=$NL
  prune=
  for r in $roots; do
    r=${r%/}
    case $r in /?*) ;; *) continue ;; esac
    case $r in *[*?[]*) continue ;; esac
    __put prune: "$r"
    prune="$prune$r$NL"
  done
  set --
  for m in $starts; do
    case $m in
      /proc|/proc/*|/sys|/sys/*|/dev|/dev/*|/run|/run/*) continue ;;
      /var/lib/docker|/var/lib/docker/*|/var/lib/containerd|/var/lib/containerd/*) continue ;;
      /var/lib/containers|/var/lib/containers/*) continue ;;
      /var/lib/kubelet/pods/*|/snap/*) continue ;;
    esac
    under=
    for r in $prune; do
      case $m in "$r" | "$r"/*) under=1 ;; esac
    done
    [ -n "$under" ] && continue
    __put start: "$m"
    set -- "$@" "$m"
  done
  # pruned by device and inode (-samefile), not by name: nine -path globs on every entry
  # took a tenth of the walk's CPU; find refuses a -samefile it cannot stat, hence the -e
  set -- "$@" -xdev \( -false
  for r in /proc /sys /dev /run /var/lib/docker /var/lib/containerd /var/lib/containers \
    /var/lib/kubelet/pods /snap $prune; do
    if [ -e "$r" ]; then set -- "$@" -o -samefile "$r"; fi
  done
  set +f
  known=$(getent passwd 2>/dev/null || cat /etc/passwd 2>/dev/null)
  uids=$(printf '%s\n' "$known" |
    awk -F: '$3 ~ /^[0-9]+$/ && !s[$3]++ { printf " -o -uid %s", $3 }')
  known=$(getent group 2>/dev/null || cat /etc/group 2>/dev/null)
  gids=$(printf '%s\n' "$known" |
    awk -F: '$3 ~ /^[0-9]+$/ && !s[$3]++ { printf " -o -gid %s", $3 }')
  unset IFS
  to=
  if command -v timeout >/dev/null 2>&1; then
    to="timeout $AUDITOR_SCAN_SECONDS"
  else
    echo "@no-timeout"
  fi
  # shellcheck disable=SC2086
  set -- "$@" \) -prune \
    -o \( -type d -perm -0002 ! -perm -1000 -o ! -type d ! -type l -perm -0002 \
    -o -type f -perm /6000 -o ! \( -false $uids \) -o ! \( -false $gids \) \) \
    \( -path "*$NL*/*" -printf 'Q %m %U %G %y %D %i\n' \
    -o -name "*$NL*" -printf 'N %m %U %G %y %D %i %h\n' -o -printf 'R %m %U %G %y %p\n' \) \
    -o -printf '.\n'
  # shellcheck disable=SC2086
  {
    $to find "$@" 2>&1
    echo "@find-rc $?"
  } | awk -v max="$AUDITOR_SCAN_ENTRIES" -v uids="$uids" -v gids="$gids" '
    BEGIN {
      n = split(uids, a, " "); for (i = 3; i <= n; i += 3) u[a[i]] = 1
      n = split(gids, a, " "); for (i = 3; i <= n; i += 3) g[a[i]] = 1
      n = 0
    }
    $0 == "." { if (++n >= max) { print "@stopped entries"; exit } next }
    /^[RQN] / {
      n++
      if (!($3 in u) && !(("u" $3) in s)) { s["u" $3] = 1; print "nouid:" $3 }
      if (!($4 in g) && !(("g" $4) in s)) { s["g" $4] = 1; print "nogid:" $4 }
      if (++r <= 5000) print; else t = 1
      next
    }
    /^@find-rc / { print; next }
    /Permission denied$/ { d++; if (d <= 3) print "E:" $0; next }
    /No such file or directory$/ { v++; next }
    { o++; if (o <= 3) print "E:" $0 }
    END {
      print "entries:" n + 0; print "denied:" d + 0; print "vanished:" v + 0; print "other:" o + 0
      if (t) print "@truncated"
    }'
fi
"""

_LOGGING = r"""
[ -d /var/log/journal ] && echo "journal-dir:yes"
command -v rsyslogd >/dev/null 2>&1 && echo "rsyslogd:yes"
command -v syslog-ng >/dev/null 2>&1 && echo "syslog-ng:yes"
set --
for f in /usr/lib/systemd/journald.conf.d/*.conf /etc/systemd/journald.conf \
  /etc/systemd/journald.conf.d/*.conf /run/systemd/journald.conf.d/*.conf \
  /etc/systemd/journal-upload.conf /etc/rsyslog.conf /etc/rsyslog.d/*.conf \
  /etc/syslog-ng/syslog-ng.conf /etc/syslog-ng/conf.d/*.conf; do
  [ -e "$f" ] || continue
  if [ -r "$f" ]; then set -- "$@" "$f"; else __put X: "$f"; fi
done
# only the settings judged leave the host: journald's and journal-upload's keys, rsyslog's
# forwarding actions, inputs and file modes, syslog-ng's network destinations
[ $# -gt 0 ] && awk '
  FNR == 1 { f = FILENAME; gsub(/\n/, "\n+:", f); print "F:" f }
  /^[ \t]*[#;]/ { next }
  /^[ \t]*\[/ { print "L:" $0; next }
  /^[ \t]*(Storage|Compress|ForwardToSyslog|URL)[ \t]*=/ { print "L:" $0; next }
  /omfwd|@|FileCreateMode|imtcp|imudp|InputTCPServerRun|UDPServerRun/ { print "L:" $0; next }
  /network\(|tcp\(|udp\(|syslog\(/ { print "L:" $0 }
' "$@"
"""

_FIREWALL = r"""
printf 'uid:%s\n' "$(id -u)"
if command -v nft >/dev/null 2>&1; then
  o=$(nft -j list ruleset 2>&1)
  printf '@nft-rc %s\n' "$?"
  __tag N: "$o"
fi
if command -v iptables-save >/dev/null 2>&1; then
  o=$(iptables-save -t filter 2>&1)
  printf '@iptables-rc %s\n' "$?"
  __tag 4: "$o"
fi
if command -v ip6tables-save >/dev/null 2>&1; then
  o=$(ip6tables-save -t filter 2>&1)
  printf '@ip6tables-rc %s\n' "$?"
  __tag 6: "$o"
fi
"""

_AUTO_UPDATES = r"""
if command -v apt-config >/dev/null 2>&1; then
  echo "manager:apt"
  __tag A: "$(apt-config dump 2>/dev/null | grep -E \
    -e '^APT::Periodic' -e '^Unattended-Upgrade::(Origins-Pattern|Allowed-Origins)' \
    -e '^APT::Get::AllowUnauthenticated' -e '^Acquire::Allow(DowngradeTo)?InsecureRepositories')"
  [ -x /usr/bin/unattended-upgrade ] && echo "unattended-upgrade:yes"
  set --
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
    /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] && set -- "$@" "$f"
  done
  [ $# -gt 0 ] && awk '
    /^[ \t]*#/ { next }
    /trusted=yes|[Tt]rusted:[ \t]*yes|allow-insecure=yes|[Aa]llow-[Ii]nsecure:[ \t]*yes/ {
      f = FILENAME; gsub(/\n/, "?", f); print "T:" f ":" FNR
    }' "$@"
elif command -v dnf >/dev/null 2>&1; then
  echo "manager:dnf"
  for f in /etc/dnf/automatic.conf /etc/dnf/dnf5-plugins/automatic.conf; do
    [ -r "$f" ] && awk '/^[ \t]*(apply_updates|upgrade_type)[ \t]*=/ { print "D:" $0 }' "$f"
  done
  command -v dnf-automatic >/dev/null 2>&1 && echo "dnf-automatic:yes"
else
  echo "manager:none"
fi
"""

# The bootloader password is judged by the presence of its directives; no hash leaves awk.
_BOOT = r"""
for f in /boot/grub/grub.cfg /boot/grub2/grub.cfg /boot/grub2/user.cfg; do
  [ -e "$f" ] || continue
  if [ -r "$f" ]; then
    printf 'cfg:%s\n' "$f"
    awk -v f="$f" '
      /^[ \t]*set[ \t]+superusers[ \t]*=/ { s = 1 }
      /^[ \t]*password(_pbkdf2)?[ \t]/ || /^GRUB2_PASSWORD=/ { p = 1 }
      END { if (s) print "superusers:" f; if (p) print "password:" f }' "$f"
  else
    printf 'X:%s\n' "$f"
  fi
done
if [ -r /proc/cmdline ]; then
  c=
  IFS= read -r c < /proc/cmdline || :
  set -f
  for a in $c; do
    case $a in
      --) break ;;
      audit=*|audit_backlog_limit=*|apparmor=*|selinux=*|security=*|lsm=*) printf 'cmd:%s\n' "$a" ;;
    esac
  done
  set +f
  echo "cmdline:read"
fi
"""

# Loaded modules, and the modprobe directives (install, blacklist) that keep one out.
_KERNEL_MODULES = r"""
[ -r /proc/modules ] && awk '{ print "loaded:" $1 }' /proc/modules
set --
for f in /etc/modprobe.d/*.conf /usr/lib/modprobe.d/*.conf /lib/modprobe.d/*.conf \
  /run/modprobe.d/*.conf; do
  [ -r "$f" ] && set -- "$@" "$f"
done
[ $# -gt 0 ] && awk '$1 == "install" || $1 == "blacklist" { print "D:" $1 " " $2 " " $3 }' "$@"
r=$(uname -r)
if [ -d "/lib/modules/$r" ]; then
  echo "tree:yes"
  find "/lib/modules/$r" \( -name 'cramfs.ko*' -o -name 'freevxfs.ko*' -o -name 'hfs.ko*' \
    -o -name 'hfsplus.ko*' -o -name 'jffs2.ko*' -o -name 'squashfs.ko*' -o -name 'udf.ko*' \
    -o -name 'usb-storage.ko*' \) 2>/dev/null |
    awk '{ sub(/.*\//, ""); sub(/\.ko.*/, ""); print "avail:" $0 }'
fi
"""


# auditd's own settings (what it does when its disk fills), not its rules (the audit section).
_AUDITD_CONF = r"""
f=/etc/audit/auditd.conf
if [ -d /etc/audit ] && { [ ! -r /etc/audit ] || [ ! -x /etc/audit ]; }; then
  echo "conf:unreadable"
elif [ ! -e "$f" ]; then
  echo "conf:absent"
elif [ ! -r "$f" ]; then
  echo "conf:unreadable"
else
  echo "conf:read"
  awk -F= '/^[ \t]*#/ { next }
    NF >= 2 {
      k = $1; v = $2; gsub(/[ \t]/, "", k); gsub(/^[ \t]+|[ \t]+$/, "", v); print "K:" k "=" v
    }' "$f"
fi
"""


SECTIONS: tuple[Section, ...] = (
    Section(
        "os",
        snippet(_OS),
        parsers.parse_os,
        "distribution identity (/etc/os-release), kernel release, architecture, host name",
    ),
    Section(
        "sshd_config",
        snippet(_SSHD_CONFIG),
        parsers_access.parse_sshd_config,
        "effective sshd settings (sshd -T, else the config files with their Includes)",
        needs_root=True,
    ),
    Section(
        "sysctl",
        snippet(_SYSCTL),
        parsers.parse_sysctl,
        "every kernel parameter (/proc/sys, as sysctl -a reads it) but counters, as strings",
        needs_root=True,
    ),
    Section(
        "mounts",
        snippet(_MOUNTS),
        parsers.parse_mounts,
        "mounted filesystems with their options (/proc/self/mounts)",
    ),
    Section(
        "file_modes",
        snippet(_FILE_MODES),
        parsers.parse_file_modes,
        "type, mode and ownership of each configured path (AUDITOR_PATHS)",
    ),
    Section(
        "packages",
        snippet(_PACKAGES),
        parsers.parse_packages,
        "installed packages and versions (dpkg or rpm)",
        shared=(DPKG,),
    ),
    Section(
        "updates",
        snippet(_UPDATES),
        parsers.parse_updates,
        "pending package updates from the local cache only, security flag, cache age",
        needs_root=True,
        shared=(DPKG,),
    ),
    Section(
        "systemd",
        snippet(_SYSTEMD),
        parsers.parse_systemd,
        "systemd service/socket/timer units: load, active, sub and enablement state",
    ),
    Section(
        "audit",
        snippet(_AUDIT),
        parsers.parse_audit,
        "audit subsystem state, loaded audit rules and the rules files",
        needs_root=True,
    ),
    Section(
        "accounts",
        snippet(_ACCOUNTS),
        parsers_access.parse_accounts,
        "local users and groups (/etc/passwd, /etc/group), UID-0 accounts",
    ),
    Section(
        "shadow",
        snippet(_SHADOW),
        parsers_access.parse_shadow,
        "password state, hash method and ageing per account (/etc/shadow, no hashes)",
        needs_root=True,
    ),
    Section(
        "login_defs",
        snippet(_LOGIN_DEFS),
        parsers_access.parse_login_defs,
        "shadow-utils defaults (/etc/login.defs): password ageing, hashing, UMASK",
    ),
    Section(
        "pam",
        snippet(_PAM),
        parsers_access.parse_pam,
        "PAM stacks for su, authentication and passwords; pwquality and faillock settings",
    ),
    Section(
        "shell_defaults",
        snippet(_SHELL_DEFAULTS),
        parsers_access.parse_shell_defaults,
        "umask and TMOUT set by the login shells' system-wide start-up files",
    ),
    Section(
        "root_path",
        snippet(_ROOT_PATH),
        parsers_access.parse_root_path,
        "root's PATH (su's ENV_SUPATH, root's start-up files) and its directories' modes",
        needs_root=True,
    ),
    Section(
        "homes",
        snippet(_HOMES),
        parsers_access.parse_homes,
        "home directories of accounts with a login shell: existence, owner, mode",
    ),
    Section(
        "core_dumps",
        snippet(_CORE_DUMPS),
        parsers_access.parse_core_dumps,
        "core dump limits (limits.conf) and systemd-coredump storage",
    ),
    Section(
        "sudoers",
        snippet(_SUDOERS),
        parsers_access.parse_sudoers,
        "sudoers rule lines, NOPASSWD rules and include directives",
        needs_root=True,
    ),
    Section(
        "listening",
        snippet(_LISTENING),
        parsers.parse_listening,
        "listening TCP and bound UDP sockets (/proc/net) with their owning process",
        needs_root=True,
    ),
    Section(
        "processes",
        snippet(_PROCESSES),
        parsers.parse_processes,
        "running processes with user, command line and cgroup",
    ),
    Section(
        "runtimes",
        snippet(_RUNTIMES),
        parsers.parse_runtimes,
        "container runtimes and orchestrator components: installed, version, running",
        shared=(DPKG,),
    ),
    Section(
        "kernel_security",
        snippet(_KERNEL_SECURITY),
        parsers.parse_kernel_security,
        "AppArmor, SELinux, kernel lockdown and seccomp availability",
    ),
    Section(
        "hardware",
        snippet(_HARDWARE),
        parsers.parse_hardware,
        "UEFI, Secure Boot, TPM and boot measurement log",
    ),
    Section(
        "fim",
        snippet(_FIM),
        parsers.parse_fim,
        "file integrity monitoring (AIDE): installed, database initialised, scheduled",
        needs_root=True,
    ),
    Section(
        "reboot",
        snippet(_REBOOT),
        parsers.parse_reboot,
        "reboot-required flag, running kernel and installed kernels",
        shared=(DPKG,),
    ),
    Section(
        "fs_scan",
        snippet(_FS_SCAN),
        parsers_system.parse_fs_scan,
        "world-writable, unowned, set-uid and set-gid files (one bounded find over local disks)",
        needs_root=True,
    ),
    Section(
        "logging",
        snippet(_LOGGING),
        parsers_system.parse_logging,
        "journald storage and forwarding, rsyslog/syslog-ng forwarding, inputs and file modes",
    ),
    Section(
        "firewall",
        snippet(_FIREWALL),
        parsers_system.parse_firewall,
        "input policy of the nftables and iptables rule sets (needs root and CAP_NET_ADMIN)",
        needs_root=True,
    ),
    Section(
        "auto_updates",
        snippet(_AUTO_UPDATES),
        parsers_system.parse_auto_updates,
        "automatic updates (APT::Periodic, unattended-upgrades, dnf-automatic), unsigned repos",
    ),
    Section(
        "boot",
        snippet(_BOOT),
        parsers_system.parse_boot,
        "bootloader password directives (never a hash) and audit/LSM kernel arguments",
        needs_root=True,
    ),
    Section(
        "kernel_modules",
        snippet(_KERNEL_MODULES),
        parsers_system.parse_kernel_modules,
        "loaded kernel modules, modprobe install/blacklist directives, rarely used modules on disk",
    ),
    Section(
        "auditd_conf",
        snippet(_AUDITD_CONF),
        parsers_system.parse_auditd_conf,
        "auditd's settings for full disks and log rotation (/etc/audit/auditd.conf)",
        needs_root=True,
    ),
)


def script_for(paths: tuple[str, ...] | list[str] = DEFAULT_PATHS) -> str:
    """The `AUDITOR_PATHS=...` assignment a runner puts before the section functions.

    Single-quoted for sh, one path per line; a path holding a newline cannot be expressed in
    the newline-separated list and is rejected.
    """
    for path in paths:
        if "\n" in path:
            raise ValueError(f"path contains a newline: {path!r}")
    joined = "\n".join(paths)
    return "AUDITOR_PATHS='" + joined.replace("'", "'\\''") + "'\n"
