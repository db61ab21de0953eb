"""The one batched, read-only shell script that gathers every host fact in a single process.

Each section runs as a shell function; its stdout, stderr and exit status are kept apart
between marker lines that carry a per-run random nonce, so nothing printed by the host (a file
name, a process argument) can forge a section boundary; and all of it is escaped on its way
out (escaping.py), so nothing can forge a line inside a section either.
"""

from __future__ import annotations

import secrets
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from auditor.collectors.host.escaping import ESCAPE_AWK
from auditor.collectors.host.sections import HELPERS, Section

_PRELUDE = r"""LC_ALL=C
export LC_ALL
PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
export PATH
NL='
'
__auditor_run() {
  printf '%s BEGIN %s\n' "$M" "$1"
  # the section's subshell: what it sets stays there; its stderr is captured, its stdout is fd 3
  __auditor_out=$( { "__section_$1" 2>&1 1>&3 3>&-; printf '\n%s' "$?"; } )
  __auditor_rc=${__auditor_out##*"$NL"}
  __auditor_err=${__auditor_out%"$NL"*}
  printf '\n%s END %s %s\n' "$M" "$1" "$__auditor_rc"
  if [ -n "$__auditor_err" ]; then printf '%s STDERR %s\n%s\n' "$M" "$1" "$__auditor_err"; fi
}
"""


@dataclass(frozen=True)
class ScanBudget:
    """The bounds of one host's file system scan (vars.fs_scan_max_seconds, _max_entries)."""

    seconds: int = 20
    entries: int = 1_000_000

    def __post_init__(self) -> None:
        if self.seconds < 1 or self.entries < 1:
            raise ValueError("a file system scan budget is at least 1 second and 1 entry")


@dataclass(frozen=True)
class SectionOutput:
    """What one section printed, apart from the others."""

    stdout: str
    stderr: str
    exit_status: int


def build_script(
    sections: Sequence[Section],
    paths: Iterable[str],
    nonce: str,
    *,
    allow_dnf: bool = False,
    scan_budget: ScanBudget | None = None,
) -> str:
    """The whole script: prelude, the sources sections share, one function per section, then
    one call per section. `allow_dnf` lets the updates section run `dnf -C`, which writes its
    own logs and locks; `scan_budget` bounds the file system scan."""
    quoted_paths = shlex.quote("\n".join(paths))
    budget = scan_budget or ScanBudget()
    lines = [
        f"M={shlex.quote(marker(nonce))}",
        f"AUDITOR_PATHS={quoted_paths}",
        f"AUDITOR_DNF={'yes' if allow_dnf else 'no'}",
        f"AUDITOR_SCAN_SECONDS={int(budget.seconds)}",
        f"AUDITOR_SCAN_ENTRIES={int(budget.entries)}",
        _PRELUDE,
        HELPERS,
    ]
    lines.extend(shared_sources(sections))
    for section in sections:
        lines.append(f"__section_{section.name}() {{\n{section.script.rstrip()}\n}}")
    lines.append("__auditor_main() {\nexec 3>&1")
    lines.extend(f"__auditor_run {section.name}" for section in sections)
    lines.append("printf '%s DONE\\n' \"$M\"\n}")
    lines.append(_OUTPUT)
    return "\n".join(lines) + "\n"


# Everything the sections print goes through one awk that escapes controls, line separators
# and non-ASCII bytes (escaping.py), so no section, present or future, needs code of its own
# for it; without awk nothing is printed. LC_ALL=C: gawk in a UTF-8 locale reads characters,
# not bytes. The sections print line by line, and over SSH each
# write became a packet of its own (248 for the host profile, ~550 bytes each, costing both
# ends): dd gathers them into 64 KiB writes.
_OUTPUT = (
    """if ! command -v awk >/dev/null 2>&1; then
  echo "auditor: this host has no awk, which the audit needs to escape what it prints" >&2
  exit 127
fi
# shellcheck disable=SC2016
__auditor_escape='"""
    + ESCAPE_AWK
    + """'
if command -v dd >/dev/null 2>&1; then
  __auditor_main | LC_ALL=C awk "$__auditor_escape" | dd ibs=4096 obs=65536 2>/dev/null
else
  __auditor_main | LC_ALL=C awk "$__auditor_escape"
fi"""
)


def shared_sources(sections: Sequence[Section]) -> list[str]:
    """The code that runs each source the sections share, once, into its variables (in the
    subshell of a command substitution). It needs the prelude's `NL`. A source's output ends
    with its exit status on a line of its own; no output at all: the source is absent here."""
    code = []
    for shared in dict.fromkeys(source for section in sections for source in section.shared):
        var = f"AUDITOR_{shared.name.upper()}"
        code.append(
            f"{var}=$(\n{shared.script}\n)\n{var}_RC=\n"
            f'if [ -n "${var}" ]; then {var}_RC=${{{var}##*"$NL"}}; {var}=${{{var}%"$NL"*}}; fi'
        )
    return code


def new_nonce() -> str:
    return secrets.token_hex(8)


def marker(nonce: str) -> str:
    return f"@@AUDITOR-{nonce}@@"


def split_output(stdout: str, nonce: str) -> tuple[dict[str, SectionOutput], bool]:
    """The sections found in the script's stdout, and whether the script reached its end."""
    mark = marker(nonce)
    begin, end, err = f"{mark} BEGIN ", f"\n{mark} END ", f"{mark} STDERR "
    found: dict[str, SectionOutput] = {}
    position = 0
    while True:
        start = stdout.find(begin, position)
        if start < 0:
            break
        name_end = stdout.find("\n", start)
        if name_end < 0:
            break
        name = stdout[start + len(begin) : name_end]
        stop = stdout.find(end + name + " ", name_end)
        if stop < 0:
            break  # the script died inside this section
        body = stdout[name_end + 1 : stop]
        status_end = stdout.find("\n", stop + 1)
        status_text = stdout[stop + len(end) + len(name) + 1 : status_end]
        position = status_end + 1
        stderr = ""
        if stdout.startswith(err + name + "\n", position):
            err_start = position + len(err) + len(name) + 1
            err_stop = stdout.find(f"\n{mark} ", err_start)
            err_stop = len(stdout) if err_stop < 0 else err_stop
            stderr = stdout[err_start:err_stop]
            position = err_stop + 1
        found[name] = SectionOutput(body, stderr, int(status_text) if status_text.isdigit() else -1)
    return found, f"{mark} DONE\n" in stdout
