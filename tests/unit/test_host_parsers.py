"""Host fact sections: recorded fixtures, read-only snippets, and one live run of the whole script.

Fixtures live in tests/fixtures/facts/host.<section>/<case>.json as
`{"source": ..., "raw": <the snippet's stdout>, "expected": <parsed data>}`, or with
`"unavailable": <FactUnavailable message>` instead of "expected"; a new file or folder is picked
up without new test code.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from auditor.collectors import host as host_collector
from auditor.collectors.host import parsers
from auditor.collectors.host.parsers import VOLATILE_SYSCTLS
from auditor.collectors.host.script import build_script, shared_sources, split_output
from auditor.collectors.host.sections import (
    DEFAULT_PATHS,
    HELPERS,
    SECTIONS,
    FactUnavailable,
    Section,
    Shared,
    script_for,
    snippet,
)
from auditor.engine import evaluate
from auditor.facts import new_fact, sha256_of
from auditor.model import Status, TargetRecord
from auditor.profiles import load_profile
from auditor.targets.base import CommandResult

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "facts"
BY_NAME = {section.name: section for section in SECTIONS}
SHARED: tuple[Shared, ...] = tuple(dict.fromkeys(src for s in SECTIONS for src in s.shared))
FIXTURE_FILES = sorted(FIXTURES.glob("host.*/*.json"))


def _fixture_id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


# ------------------------------------------------------------------------------- fixtures


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=_fixture_id)
def test_fixture_parses_to_expected(path: Path) -> None:
    fixture = json.loads(path.read_text(encoding="utf-8"))
    assert set(fixture) in ({"source", "raw", "expected"}, {"source", "raw", "unavailable"}), path
    assert fixture["source"].strip(), "every fixture says where its raw output came from"
    section = BY_NAME[path.parent.name.removeprefix("host.")]
    if "unavailable" in fixture:
        with pytest.raises(FactUnavailable) as caught:
            section.parse(fixture["raw"])
        assert str(caught.value) == fixture["unavailable"]
        assert "\n" not in str(caught.value)
        return
    data = section.parse(fixture["raw"])
    assert data == fixture["expected"]
    assert json.loads(json.dumps(data)) == data, "fact data must be JSON-serialisable as is"


def test_every_section_has_fixtures() -> None:
    folders = {p.parent.name for p in FIXTURE_FILES}
    missing = [s.name for s in SECTIONS if f"host.{s.name}" not in folders]
    assert not missing, f"sections without a recorded fixture: {missing}"
    unknown = sorted(f for f in folders if f.removeprefix("host.") not in BY_NAME)
    assert not unknown, f"fixture folders for no section: {unknown}"


@pytest.mark.parametrize(
    "path",
    sorted(FIXTURES.glob("host.shadow/*.json")) + sorted(FIXTURES.glob("host.accounts/*.json")),
    ids=_fixture_id,
)
def test_no_password_hash_is_recorded(path: Path) -> None:
    raw = json.loads(path.read_text(encoding="utf-8"))["raw"]
    assert not re.search(r"\$(1|2[aby]?|5|6|7|y|gy|sha1|md5)\$", raw)


# -------------------------------------------------------------------------------- contract


def test_section_contract() -> None:
    names = [s.name for s in SECTIONS]
    assert len(names) == len(set(names))
    assert set(names) >= {
        "os", "sshd_config", "sysctl", "mounts", "file_modes", "packages", "updates",
        "systemd", "audit", "accounts", "shadow", "sudoers", "listening", "processes",
        "runtimes", "kernel_security", "hardware", "fim", "reboot",
    }  # fmt: skip
    for section in SECTIONS:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", section.name)
        assert section.description and "\n" not in section.description
        assert section.parse.__name__ == f"parse_{section.name}"
        assert section.parse.__doc__ and "Example" in section.parse.__doc__


def test_needs_root_where_the_data_is_root_only() -> None:
    root_only = {s.name for s in SECTIONS if s.needs_root}
    assert {"sshd_config", "audit", "shadow", "sudoers"} <= root_only


def test_default_paths() -> None:
    assert len(DEFAULT_PATHS) == len(set(DEFAULT_PATHS))
    for path in DEFAULT_PATHS:
        assert path.startswith("/") and "\n" not in path and "*" not in path
    for required in (
        "/var/run/docker.sock",
        "/run/containerd/containerd.sock",
        "/etc/docker/daemon.json",
        "/lib/systemd/system/docker.service",
        "/usr/lib/systemd/system/docker.socket",
        "/etc/kubernetes/manifests/kube-apiserver.yaml",
        "/etc/kubernetes/manifests/etcd.yaml",
        "/etc/kubernetes/admin.conf",
        "/var/lib/kubelet/config.yaml",
        "/etc/shadow",
        "/etc/sudoers",
        "/etc/ssh/sshd_config",
    ):
        assert required in DEFAULT_PATHS


def test_script_for_quotes_every_path_for_sh() -> None:
    paths = ["/a b", "/it's", "/$(id)", "/`id`", "/<script>", "/back\\slash"]
    shell = script_for(paths) + "printf '%s' \"$AUDITOR_PATHS\"\n"
    result = subprocess.run(["sh", "-c", shell], capture_output=True, text=True, check=True)
    assert result.stdout == "\n".join(paths)
    with pytest.raises(ValueError):
        script_for(["/new\nline"])


# ----------------------------------------------------------------- read-only by construction

_FORBIDDEN_COMMANDS = (
    "rm", "rmdir", "mv", "cp", "tee", "touch", "mkdir", "chmod", "chown", "chgrp", "ln", "dd",
    "truncate", "install", "mkfifo", "mknod", "mount", "umount", "kill", "pkill", "killall",
    "shutdown", "reboot", "useradd", "usermod", "userdel", "groupadd", "passwd", "chpasswd",
    "crontab", "dpkg", "apt", "aptitude", "eval", "exec", "exit", "source", "sudo", "su",
    "wget", "curl", "nc", "python", "python3", "perl", "insmod", "modprobe", "rmmod",
    "iptables", "ip6tables", "ip", "augenrules", "aideinit", "update-aide.conf", "visudo",
)  # fmt: skip


def _strip_single_quotes_and_comments(script: str) -> str:
    """The snippet with single-quoted strings and comments blanked (awk programs, formats)."""
    out: list[str] = []
    i, state = 0, "normal"
    while i < len(script):
        ch = script[i]
        if state == "single":
            if ch == "'":
                state = "normal"
                out.append("''")
            elif ch == "\n":
                out.append("\n")
            i += 1
            continue
        if state == "double":
            if ch == "\\" and i + 1 < len(script):
                out.append(script[i : i + 2])
                i += 2
                continue
            if ch == '"':
                state = "normal"
            out.append(ch)
            i += 1
            continue
        if ch == "\\" and i + 1 < len(script):
            out.append(script[i : i + 2])
            i += 2
        elif ch == "'":
            state = "single"
            i += 1
        elif ch == '"':
            state = "double"
            out.append(ch)
            i += 1
        elif ch == "#" and (i == 0 or script[i - 1] in " \t\n"):
            while i < len(script) and script[i] != "\n":
                i += 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _commands(code: str) -> list[str]:
    """Simple commands, split at ; | & && || newlines, ( ) { } and $( (good enough here)."""
    code = code.replace("\\\n", " ")
    parts = re.split(
        r"\$\(|;;|[;&|()\n{}]|\bthen\b|\bdo\b|\belse\b|\bif\b|\belif\b|\bwhile\b", code
    )
    return [p.strip() for p in parts if p.strip()]


def _allowed_use(first: str, args: list[str]) -> bool:
    """Whether a command the snippets may run is used in its read-only form."""
    if first == "rpm":
        return args[:1] in (["-qa"], ["-q"], ["-qf"])
    if first == "systemctl":
        return args[:1] in (["list-units"], ["list-unit-files"])
    if first == "auditctl":
        return args in (["-s"], ["-l"])
    if first == "sysctl":
        return args == ["-a"]
    if first == "nft":
        return args[:3] == ["-j", "list", "ruleset"] or args[:2] == ["list", "ruleset"]
    if first == "find":
        return not {"-delete", "-fprint", "-fprint0", "-fprintf", "-fls", "-execdir", "-ok"} & set(
            args
        )
    if first == "sed":
        return not any(w.startswith("-i") or w == "--in-place" for w in args)
    if first == "setpriv":
        return "apt-get" in args and "-s" in args
    if first == "apt-get":
        return "-s" in args
    if first in ("dnf", "yum", "$m"):
        return "-C" in args
    return True


def _write_violations(script: str) -> list[str]:
    """Why a snippet could change the host: file redirections and writing/unsafe commands."""
    problems: list[str] = []
    code = _strip_single_quotes_and_comments(script)
    # every output redirection goes to /dev/null or duplicates a descriptor
    for match in re.finditer(r"\d*>>?\|?", code):
        rest = code[match.end() :].lstrip()
        if match.group().endswith("|") or not rest.startswith(("/dev/null", "&")):
            problems.append(f"redirection into a file: {code[match.start() : match.end() + 30]!r}")
    for command in _commands(code):
        words = [w for w in command.split() if not re.match(r"\d*[<>]", w)]
        # skip assignments (VAR=value cmd) and negation to get at the command word
        while words and (re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=\S*", words[0]) or words[0] == "!"):
            words = words[1:]
        if not words or words[:2] == ["command", "-v"]:
            continue
        first, args = words[0].strip('"'), words[1:]
        if first in _FORBIDDEN_COMMANDS:
            problems.append(f"forbidden command: {command!r}")
        elif not _allowed_use(first, args):
            problems.append(f"{first} used in a way that may write: {command!r}")
        elif "apt-get" in args and "-s" not in args:
            problems.append(f"apt-get must simulate: {command!r}")
    if re.search(r"\bset\s+-e\b", code):
        problems.append("set -e would stop the runner's shell")
    return problems


@pytest.mark.parametrize("section", [*SECTIONS, *SHARED], ids=lambda s: s.name)
def test_snippet_writes_nowhere(section: Section | Shared) -> None:
    assert _write_violations(section.script) == []


@pytest.mark.parametrize(
    "bad",
    [
        "echo x > /tmp/f",
        "echo x >>/var/log/x",
        "printf '%s' \"$v\" >| out",
        "ls; rm -rf /tmp/x",
        "o=$(cp a b)",
        "sed -i s/a/b/ /etc/x",
        "apt-get update",
        "apt-get -o Debug::NoLocking=1 upgrade",
        "dnf check-update",
        '"$m" -q check-update',
        "rpm -e bash",
        "systemctl restart ssh",
        "sysctl -w kernel.x=1",
        "auditctl -D",
        "nft flush ruleset",
        "nft add rule inet filter input drop",
        "find / -name x -delete",
        "find / -fprint /tmp/x",
        "x=1 tee /etc/x",
        "if true; then mkdir /x; fi",
        "exit 1",
        "set -e",
    ],
)
def test_write_check_catches(bad: str) -> None:
    assert _write_violations(bad), bad


def test_dnf_runs_only_from_the_cache() -> None:
    updates = BY_NAME["updates"].script
    assert re.findall(r"\bm=(\w+)", updates) == ["dnf", "yum"]
    calls = [line for line in updates.splitlines() if '$("$m"' in line]
    assert calls and all(" -C " in line for line in calls)


def test_snippets_are_wrapped_safely() -> None:
    for section in SECTIONS:
        script = section.script
        assert script.startswith("{\n") and script.endswith("\n:\n} </dev/null"), section.name
        assert "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in script
    for shared in SHARED:  # its exit status is printed, so no closing `:`
        assert shared.script.startswith("{\n") and shared.script.endswith("\n} </dev/null")
        assert "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in shared.script


@pytest.mark.parametrize("section", [*SECTIONS, *SHARED], ids=lambda s: s.name)
def test_shellcheck_clean(section: Section | Shared) -> None:
    head = (
        "#!/bin/sh\nAUDITOR_PATHS=/etc/passwd\nAUDITOR_DPKG=\nAUDITOR_DPKG_RC=\n"
        "export AUDITOR_PATHS AUDITOR_DPKG AUDITOR_DPKG_RC\n"
    )
    body = f"{head}f() {{\n{section.script}\n}}\nf\n"
    result = subprocess.run(
        ["shellcheck", "-s", "sh", "-"], input=body, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


def test_helpers_are_shellcheck_clean() -> None:
    body = f"#!/bin/sh\nNL='\n'\n{HELPERS}\n__tag T: \"$(uname)\"\n"
    result = subprocess.run(
        ["shellcheck", "-s", "sh", "-"], input=body, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


def test_tag_prefixes_every_line_with_builtins_alone() -> None:
    """`__tag` prints host text verbatim (no printf escapes, no globbing, spaces kept), drops
    empty lines, prints nothing for no text, and leaves IFS and globbing as they were."""
    text = "  lead and trail  \n\n100% \\n \\t %s %d\n*\n\n-n last"
    script = (
        f"NL='\n'\n{HELPERS}\n"
        'cd /\n__tag T: "$1"\n__tag E: ""\n'
        'case "$IFS" in " \t\n") echo ifs=default ;; *) echo ifs=changed ;; esac\n'
        "case $- in *f*) echo noglob=on ;; *) echo noglob=off ;; esac\n"
    )
    done = subprocess.run(
        ["sh", "-c", script, "sh", text], capture_output=True, text=True, check=True
    )
    assert done.stdout.split("\n") == [
        "T:  lead and trail  ", "T:100% \\n \\t %s %d", "T:*", "T:-n last",
        "ifs=default", "noglob=off", "",
    ]  # fmt: skip
    traced = subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=execve,clone,clone3,fork,vfork", "sh", "-c",
         f"NL='\n'\n{HELPERS}\n__tag T: \"$1\"", "sh", text],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    calls = [line for line in traced.stderr.splitlines() if "(" in line]
    assert len(calls) == 1 and calls[0].startswith("execve("), calls  # sh itself, nothing else


# ------------------------------------------------------------------------ live run (this host)


def _build(sections: tuple[Section, ...], nonce: str) -> str:
    """Like the runner: one function per section, each called in a subshell of one `sh -s`,
    timed."""
    lines = [script_for(DEFAULT_PATHS), "NL='\n'\n", HELPERS]
    lines.extend(f"{c}\n" for c in shared_sources(sections))
    for s in sections:
        lines.append(f"__s_{s.name}() {{\n{s.script}\n}}\n")
    for s in sections:
        lines.append(
            f"printf '%s\\n' '@@{nonce} BEGIN {s.name}'\n"
            f"__t=$(date +%s%N)\n(__s_{s.name})\n__rc=$?\n"
            f'printf \'@@{nonce} END {s.name} %s %s\\n\' "$__rc" "$(( $(date +%s%N) - __t ))"\n'
        )
    lines.append(f"printf '%s\\n' '@@{nonce} DONE'\n")
    return "".join(lines)


def _split(stdout: str, nonce: str) -> dict[str, tuple[str, int, float]]:
    found: dict[str, tuple[str, int, float]] = {}
    current: str | None = None
    body: list[str] = []
    for line in stdout.split("\n"):
        if line.startswith(f"@@{nonce} BEGIN "):
            current, body = line.split()[2], []
        elif line.startswith(f"@@{nonce} END "):
            _, _, name, rc, ns = line.split()
            found[name] = ("".join(b + "\n" for b in body), int(rc), int(ns) / 1e9)
            current = None
        elif current is not None:
            body.append(line)
    return found


def _run_live(prefix: list[str], sections: tuple[Section, ...]) -> dict[str, Any]:
    nonce = secrets.token_hex(8)
    script = _build(sections, nonce)
    started = time.monotonic()
    result = subprocess.run(
        [*prefix, "sh", "-s"], input=script.encode(), capture_output=True, cwd="/", timeout=120
    )
    elapsed = time.monotonic() - started
    stdout = result.stdout.decode("utf-8", "surrogateescape")
    # the script reached its end: no snippet read the rest of it from stdin, none exited
    assert f"@@{nonce} DONE" in stdout, result.stderr.decode(errors="replace")[-2000:]
    return {"sections": _split(stdout, nonce), "elapsed": elapsed}


def _check_live(run: dict[str, Any], sections: tuple[Section, ...]) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    for section in sections:
        raw, status, _ = run["sections"][section.name]
        assert status == 0, f"{section.name} exited {status}"
        try:
            parsed[section.name] = section.parse(raw)
        except FactUnavailable as exc:
            parsed[section.name] = exc
        json.dumps(parsed[section.name], default=str)
    return parsed


def test_whole_script_runs_here_and_every_parser_accepts_it() -> None:
    run = _run_live([], SECTIONS)
    parsed = _check_live(run, SECTIONS)
    # these read world-readable files only and must work anywhere, as any user
    for name in ("os", "mounts", "file_modes", "accounts", "processes", "kernel_security"):
        assert not isinstance(parsed[name], FactUnavailable), f"{name}: {parsed[name]}"
    assert parsed["os"]["kernel"] == os.uname().release
    assert [e["path"] for e in parsed["file_modes"]] == list(DEFAULT_PATHS)
    assert os.getpid() in {p["pid"] for p in parsed["processes"]}
    assert all(p["pid"] != os.getpid() or p["comm"] for p in parsed["processes"])
    # the sections that read the shared package list see what dpkg itself says
    listed = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package} ${Version} ${Status}\n"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    installed = {
        line.split()[0]: line.split()[1] for line in listed if line.endswith(" ok installed")
    }
    assert parsed["packages"]["manager"] == "dpkg"
    assert set(parsed["packages"]["packages"]) == set(installed)
    assert parsed["packages"]["packages"]["dpkg"] == installed["dpkg"]
    for item in parsed["runtimes"].values():
        if item.get("package"):
            assert item["package_version"] == installed[item["package"]]
    # speed: the whole script well under the 2 s budget of a full local audit
    timings = {name: t for name, (_, _, t) in run["sections"].items()}
    assert sum(timings.values()) < 1.5, timings


def test_kernel_parameters_read_twice_are_the_same_fact() -> None:
    """The kernel's counters change between two reads (a fork moves ns_last_pid, uuid is new
    each time); the fact leaves them out, so an unchanged host gives the same evidence."""
    sections = (BY_NAME["sysctl"],)
    first, second = (_check_live(_run_live([], sections), sections)["sysctl"] for _ in "ab")
    assert first == second and sha256_of(first) == sha256_of(second)
    assert "kernel.randomize_va_space" in first
    assert not VOLATILE_SYSCTLS & set(first)
    raw = _run_live([], sections)["sections"]["sysctl"][0]
    assert "P:/proc/sys/kernel/random/uuid:" in raw  # the probe reads them; the parser drops


def test_whole_script_as_unprivileged_user() -> None:
    sections = SECTIONS
    run = _run_live(["runuser", "-u", "nobody", "--"], sections)
    parsed = _check_live(run, sections)
    assert isinstance(parsed["shadow"], FactUnavailable)
    assert str(parsed["shadow"]) == "/etc/shadow not readable (needs root)"
    if Path("/etc/sudoers").exists():
        assert isinstance(parsed["sudoers"], FactUnavailable)
    audit = parsed["audit"]
    if not isinstance(audit, FactUnavailable) and audit["auditctl"]:
        assert audit["enabled"] is None and audit["rules"] is None
    sum_others = sum(t for _, (_, _, t) in run["sections"].items())
    assert sum_others < 2.0


def test_parsers_module_has_no_io() -> None:
    source = Path(parsers.__file__).read_text(encoding="utf-8")
    for banned in ("open(", "subprocess", "os.system", "eval(", "exec(", "Path(", "import socket"):
        assert banned not in source, banned


def test_runtime_versions_come_from_their_packages_when_packaged() -> None:
    raw = (
        "N:docker\nB:docker /usr/bin/dockerd\nN:runc\nB:runc /usr/bin/runc\n"
        "N:kubelet\nB:kubelet /usr/local/bin/kubelet\n"
        "K:docker-ce 3:24.0.7-1.el9\nK:runc 4:1.1.12-1.module+el8.9.0+21243+a586538b\n"
        "P:docker docker-ce\nP:runc runc\n"
        "V:kubelet Kubernetes v1.29.3\n"
    )
    found = parsers.parse_runtimes(raw)
    assert found["docker"]["version"] == "24.0.7"
    assert found["docker"]["package"] == "docker-ce"
    assert found["docker"]["package_version"] == "3:24.0.7-1.el9"
    assert found["runc"]["version"] == "1.1.12"
    assert found["kubelet"]["version"] == "1.29.3"  # not packaged: its --version
    assert found["kubelet"]["package"] is None


def test_runtime_section_runs_no_version_command_for_packaged_binaries(tmp_path: Path) -> None:
    """dockerd --version starts a Go runtime (~80 ms): packaged binaries are not executed."""
    trace = tmp_path / "trace"
    script = build_script([BY_NAME["runtimes"]], DEFAULT_PATHS, "n1")
    done = subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=execve", "-o", str(trace), "sh", "-c", script],
        capture_output=True,
        text=True,
        check=True,
    )
    executed = {line.split('"')[1] for line in trace.read_text().splitlines() if "execve(" in line}
    found = parsers.parse_runtimes(split_output(done.stdout, "n1")[0]["runtimes"].stdout)
    packaged = {name: item["path"] for name, item in found.items() if item["package"]}
    assert "docker" in packaged, "this machine's dockerd comes from Debian's docker.io package"
    assert found["docker"]["package_version"].startswith(found["docker"]["version"])
    assert not executed & set(packaged.values())


def test_whole_script_reads_the_package_database_once(tmp_path: Path) -> None:
    """The packages, updates, reboot and runtimes sections share one read of dpkg's status
    file (grep's), and dpkg-query (twice the time) does not run."""
    readers = [s.name for s in SECTIONS if any(src.name == "dpkg" for src in s.shared)]
    assert readers == ["packages", "updates", "runtimes", "reboot"]
    trace = tmp_path / "trace"
    script = build_script(SECTIONS, DEFAULT_PATHS, "n2")
    done = subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=execve,openat", "-o", str(trace), "sh", "-c", script],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = trace.read_text().splitlines()
    assert not [line for line in lines if "execve(" in line and "dpkg-query" in line]
    opened = [line for line in lines if 'openat(AT_FDCWD, "/var/lib/dpkg/status"' in line]
    assert len(opened) == 1, opened
    outputs = split_output(done.stdout, "n2")[0]
    assert BY_NAME["packages"].parse(outputs["packages"].stdout)["manager"] == "dpkg"
    assert BY_NAME["updates"].parse(outputs["updates"].stdout)["manager"] == "apt"


_STATUS = """Package: alpha
Status: install ok installed
Priority: optional
Maintainer: A <a@example.org>
Architecture: amd64
Version: 1.0-1
Description: first
 Package: fake-from-description
 Version: 9

Package: beta
Status: deinstall ok config-files
Maintainer: B <b@example.org>
Architecture: all
Version: 2:3.4-5
Description: removed, its configuration kept

Package: gamma
Status: purge ok not-installed
Architecture: amd64

Package: delta
Version: 0.1
Maintainer: D <d@example.org>
Architecture: i386
Multi-Arch: same
Status: hold ok installed
Description: last stanza, no blank line after it"""


@pytest.mark.parametrize("journal", [False, True], ids=["status-file", "journal"])
def test_package_list_is_what_dpkg_query_prints(tmp_path: Path, journal: bool) -> None:
    """The shared package list equals dpkg-query's over a crafted database (mounted on
    /var/lib/dpkg in a private mount namespace): field order, continuation lines that look
    like fields, not-installed packages, a last stanza without a blank line. With an entry
    in dpkg's journal, dpkg-query itself runs, as only it applies the journal."""
    admin = tmp_path / "dpkg"
    (admin / "updates").mkdir(parents=True)
    (admin / "info").mkdir()
    (admin / "status").write_text(_STATUS + "\n")  # dpkg wants the final newline
    if journal:  # an interrupted upgrade of alpha
        (admin / "updates" / "0001").write_text(
            _STATUS.split("\n\n")[0].replace("Version: 1.0-1", "Version: 1.0-2") + "\n"
        )
    dump = 'printf "%s\\n@%s\\n" "$AUDITOR_DPKG" "$AUDITOR_DPKG_RC"'
    script = f"NL='\n'\n{shared_sources(SECTIONS)[0]}\n{dump}\n"
    query = "dpkg-query -W -f='${Package} ${Version} ${Architecture} ${Status}\\n'"
    setup = f'mount --bind {admin} /var/lib/dpkg && sh -c "$1" && {query}'
    trace = tmp_path / "trace"
    done = subprocess.run(
        ["unshare", "--mount", "strace", "-f", "-qq", "-e", "trace=execve", "-o", str(trace),
         "sh", "-c", setup, "sh", script],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    ours, _, theirs = done.stdout.partition("@0\n")
    assert ours == theirs
    assert theirs.splitlines() == [
        f"alpha {'1.0-2' if journal else '1.0-1'} amd64 install ok installed",
        "beta 2:3.4-5 all deinstall ok config-files",
        "delta 0.1 i386 hold ok installed",
    ]
    lines = trace.read_text().splitlines()
    queries = [line for line in lines if 'execve("/usr/bin/dpkg-query' in line]
    assert len(queries) == (2 if journal else 1)  # ours only with a journal; the test's own


def _in_private_mounts(setup: str, sections: list[Section], nonce: str) -> dict[str, Any]:
    """Run `setup` (mounts over the host's files, then `exec sh -c "$1"`) and the script of
    `sections` in a private mount namespace: the host's own files stay untouched. Returns
    the sections' outputs."""
    script = build_script(sections, [], nonce)
    done = subprocess.run(
        ["unshare", "--mount", "sh", "-c", setup, "sh", script],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return split_output(done.stdout, nonce)[0]


def test_fim_finds_aide_in_cron_files_with_one_grep(tmp_path: Path) -> None:
    """The fim section greps every readable cron file at once. It runs in a private mount
    namespace over an /etc of this test's own (a tmpfs), so the host's files are untouched."""
    setup = (
        "awk=$(readlink -f /usr/bin/awk) && mount -t tmpfs auditor-test /etc && "
        'mkdir /etc/alternatives && ln -s "$awk" /etc/alternatives/awk && '  # the probe's awk
        "mkdir /etc/cron.daily /etc/cron.d && "
        "printf '/usr/bin/aide --check\\n' > '/etc/cron.daily/aide check' && "
        "printf 'logrotate /etc/logrotate.conf\\n' > /etc/cron.daily/logrotate && "
        "printf 'AIDE=1 run-it\\n' > /etc/cron.daily/zz-AIDE && "
        "printf '0 5 * * * root aide --check\\n' > /etc/crontab && "
        'exec sh -c "$1"'
    )
    found = _in_private_mounts(setup, [BY_NAME["fim"]], "n3")
    fim = parsers.parse_fim(found["fim"].stdout)["aide"]
    assert fim["schedules"] == [
        "/etc/cron.daily/aide check", "/etc/cron.daily/zz-AIDE", "/etc/crontab",
    ]  # fmt: skip
    assert fim["scheduled"] is True


def test_config_walks_follow_includes_line_for_line(tmp_path: Path) -> None:
    """The sshd_config and sudoers walks read each file in one awk and split it in the shell:
    every line comes out as it is (blank ones, one without a final newline, one that looks
    like a tag), each included file where its Include stands. Run over crafted files mounted
    in a private mount namespace."""
    sudoers = tmp_path / "sudoers"
    sudoers.write_text(
        "Defaults env_reset\nroot ALL=(ALL:ALL) ALL \\\n\nops ALL=(ALL) NOPASSWD: /bin/ls\n"
        "@includedir /etc/sudoers.d\n#include extra\n"
    )
    setup = (
        "mount -t tmpfs auditor-test /etc/ssh && mkdir /etc/ssh/conf.d && "
        "printf '# top\\nPort 2222\\n\\n   \\nInclude conf.d/*.conf\\n"
        "include /etc/ssh/extra.conf\\nPermitRootLogin no' > /etc/ssh/sshd_config && "
        "printf 'PasswordAuthentication no\\n' > /etc/ssh/conf.d/a.conf && "
        "printf 'Include /etc/ssh/conf.d/nested.inc\\nX11Forwarding no\\n' "
        "> /etc/ssh/conf.d/b.conf && "
        "printf 'L:fake line\\n' > /etc/ssh/conf.d/nested.inc && "
        "printf 'Ciphers aes256-gcm@openssh.com\\n' > /etc/ssh/extra.conf && "
        f"mount --bind {sudoers} /etc/sudoers && "
        "mount -t tmpfs auditor-test /etc/sudoers.d && "
        "printf 'ops2 ALL=(ALL) ALL\\n' > /etc/sudoers.d/10-ops && "
        "printf 'skipped ALL=(ALL) ALL\\n' > /etc/sudoers.d/skip.me && "
        "printf 'skipped ALL=(ALL) ALL\\n' > '/etc/sudoers.d/old~' && "
        'exec sh -c "$1"'
    )
    found = _in_private_mounts(setup, [BY_NAME["sshd_config"], BY_NAME["sudoers"]], "n4")
    walked = [line for line in found["sshd_config"].stdout.splitlines() if line[:2] != "T:"]
    assert walked[walked.index("F:/etc/ssh/sshd_config") :] == [
        "F:/etc/ssh/sshd_config", "L:# top", "L:Port 2222", "L:", "L:   ",
        "L:Include conf.d/*.conf",
        "F:/etc/ssh/conf.d/a.conf", "L:PasswordAuthentication no", "E:/etc/ssh/conf.d/a.conf",
        "F:/etc/ssh/conf.d/b.conf", "L:Include /etc/ssh/conf.d/nested.inc",
        "F:/etc/ssh/conf.d/nested.inc", "L:L:fake line", "E:/etc/ssh/conf.d/nested.inc",
        "L:X11Forwarding no", "E:/etc/ssh/conf.d/b.conf",
        "L:include /etc/ssh/extra.conf",
        "F:/etc/ssh/extra.conf", "L:Ciphers aes256-gcm@openssh.com", "E:/etc/ssh/extra.conf",
        "L:PermitRootLogin no", "E:/etc/ssh/sshd_config",
    ]  # fmt: skip
    assert found["sudoers"].stdout.splitlines() == [
        "F:/etc/sudoers", "L:Defaults env_reset", "L:root ALL=(ALL:ALL) ALL \\134", "L:",
        "L:ops ALL=(ALL) NOPASSWD: /bin/ls", "L:@includedir /etc/sudoers.d",
        "F:/etc/sudoers.d/10-ops", "L:ops2 ALL=(ALL) ALL", "E:/etc/sudoers.d/10-ops",
        "L:#include extra", "N:/etc/extra", "E:/etc/sudoers",
    ]  # fmt: skip
    rules = parsers.parse_sudoers(found["sudoers"].stdout)
    assert [r["line"] for r in rules["nopasswd"]] == ["ops ALL=(ALL) NOPASSWD: /bin/ls"]


def test_config_walks_read_no_file_a_byte_at_a_time() -> None:
    """dash's `read` makes one read(2) per byte; the walks hand whole files to awk instead."""
    script = build_script([BY_NAME["sshd_config"], BY_NAME["sudoers"]], [], "n5")
    traced = subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=read", "sh", "-s"],
        input=script, capture_output=True, text=True, check=True,
    )  # fmt: skip
    single = [line for line in traced.stderr.splitlines() if re.search(r", 1\) += 1$", line)]
    assert len(single) < 50, single[:5]


def test_file_modes_stats_in_one_process(tmp_path: Path) -> None:
    """Existing paths share one stat; absent ones below a searchable directory, however deep
    (/etc/kubernetes/pki/ca.crt on a host without Kubernetes), need none."""
    deep = tmp_path / "absent" / "deeper" / "file"
    paths = ["/etc/passwd", "/etc/group", str(deep), str(tmp_path / "absent")]
    trace = tmp_path / "trace"
    script = build_script([BY_NAME["file_modes"]], paths, "n4")
    done = subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=execve", "-o", str(trace), "sh", "-c", script],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    stats = [line for line in trace.read_text().splitlines() if 'execve("/usr/bin/stat"' in line]
    assert len(stats) == 1, stats
    entries = parsers.parse_file_modes(split_output(done.stdout, "n4")[0]["file_modes"].stdout)
    assert [e["path"] for e in entries] == paths
    assert [e["exists"] for e in entries] == [True, True, False, False]


def test_script_output_leaves_in_large_writes(tmp_path: Path) -> None:
    """Sections print line by line; over SSH each write was a packet of its own. dd gathers
    the output into 64 KiB writes, and nothing is lost or reordered on the way."""
    trace = tmp_path / "trace"
    script = build_script(SECTIONS, DEFAULT_PATHS, "n5")
    done = subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=execve,write", "-o", str(trace), "sh", "-c", script],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    outputs, complete = split_output(done.stdout, "n5")
    assert complete and list(outputs) == [s.name for s in SECTIONS]
    lines = trace.read_text().splitlines()
    dd_pid = next(line.split()[0] for line in lines if 'execve("/usr/bin/dd"' in line)
    writes = [line for line in lines if line.startswith(f"{dd_pid} write(1,")]
    assert len(writes) <= len(done.stdout) // 65536 + 1, writes


def test_runtime_owners_are_found_when_no_package_is_named_like_the_runtime(
    tmp_path: Path,
) -> None:
    """Owners are looked for first in the lists of packages named like the runtime; a binary
    held by none of them (Docker's containerd.io ships runc) is looked for in every list."""
    section = BY_NAME["runtimes"]
    spec = '"runc|runc|runc|runc containerd"'
    assert spec in section.script
    unhinted = dataclasses.replace(
        section, script=section.script.replace(spec, '"runc|runc|runc|no-such-package"')
    )
    found = {}
    for case in (section, unhinted):
        trace = tmp_path / f"trace-{len(found)}"
        done = subprocess.run(
            ["strace", "-f", "-v", "-qq", "-e", "trace=execve", "-o", str(trace), "sh", "-c",
             build_script([case], DEFAULT_PATHS, "n6")],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        raw = split_output(done.stdout, "n6")[0]["runtimes"].stdout
        lists = [line.count(".list") for line in trace.read_text().splitlines()]
        reads_all = max(lists) > 50  # this machine has hundreds of packages
        found[reads_all] = {
            n: (r["package"], r["package_version"]) for n, r in parsers.parse_runtimes(raw).items()
        }
    assert set(found) == {False, True}  # the hinted run never read every list, the other did
    assert found[False] == found[True]
    assert found[True]["runc"][0] == "runc"


def test_nothing_a_section_sets_reaches_the_next() -> None:
    """A section is a group, not a subshell: the runner's command substitution is its
    subshell, so variables, IFS, `set -f` and functions stay inside it."""
    setter = Section(
        "setter",
        snippet("leaked=yes\nIFS=x\nset -f\nhelper() { :; }\necho done"),
        lambda raw: raw,
        "sets things",
    )
    reader = Section(
        "reader",
        snippet(
            'printf "leaked=%s\\n" "${leaked-unset}"\n'
            'case "$IFS" in x) echo "ifs=x" ;; *) echo "ifs=default" ;; esac\n'
            'case $- in *f*) echo "noglob=on" ;; *) echo "noglob=off" ;; esac\n'
            "command -v helper >/dev/null && echo helper=defined || echo helper=absent"
        ),
        lambda raw: raw,
        "reads them",
    )
    done = subprocess.run(
        ["sh", "-s"], input=build_script([setter, reader], [], "n7"),
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    outputs = split_output(done.stdout, "n7")[0]
    assert outputs["setter"].stdout == "done\n" and outputs["setter"].exit_status == 0
    assert outputs["reader"].stdout.split() == [
        "leaked=unset", "ifs=default", "noglob=off", "helper=absent",
    ]  # fmt: skip


def test_sysctl_reads_every_parameter_grep_reads() -> None:
    """head replaced grep for its small reads: the same parameters, the same values (but the
    few the kernel changes between two reads), empty values kept."""
    section = BY_NAME["sysctl"]
    done = subprocess.run(
        ["sh", "-s"], input=build_script([section], [], "n8"), capture_output=True, text=True
    )
    ours = section.parse(split_output(done.stdout, "n8")[0]["sysctl"].stdout)
    grep = subprocess.run(["grep", "-rs", "", "/proc/sys"], capture_output=True, text=True)
    theirs = parsers.parse_sysctl("".join(f"P:{line}\n" for line in grep.stdout.splitlines()))
    assert set(ours) == set(theirs)
    same = [key for key in theirs if ours[key] == theirs[key]]
    assert len(same) >= 0.99 * len(theirs)
    assert {k for k, v in theirs.items() if v == ""} <= {k for k, v in ours.items() if v == ""}


def test_sysctl_tells_file_names_from_values(tmp_path: Path) -> None:
    """Run over a /proc/sys of this test's own (bind-mounted in a private mount namespace):
    empty values, several lines, a dotted name, an empty file and a value that looks like
    head's file-name line."""
    tree = tmp_path / "sys"
    (tree / "net" / "ipv4" / "conf" / "eth0.100").mkdir(parents=True)
    (tree / "kernel").mkdir()
    (tree / "kernel" / "empty_value").write_text("\n")
    (tree / "kernel" / "no_value").write_text("")
    (tree / "kernel" / "lines").write_text("one\n\ntwo\n")
    (tree / "kernel" / "trap").write_text("==> /etc/passwd <==\n")
    (tree / "net" / "ipv4" / "conf" / "eth0.100" / "forwarding").write_text("1\n")
    (tree / "net" / "last_empty").write_text("\n")
    section = BY_NAME["sysctl"]
    setup = f'mount --bind {tree} /proc/sys && exec sh -c "$1"'
    parsed = section.parse(_in_private_mounts(setup, [section], "n9")["sysctl"].stdout)
    assert parsed == {
        "kernel.empty_value": "",
        "kernel.lines": "one\n\ntwo",
        "kernel.trap": "==> /etc/passwd <==",
        "net.ipv4.conf.eth0/100.forwarding": "1",
        "net.last_empty": "",
    }


# ------------------------------------------------------------------------------- forgeries
# Each forgery is planted in real files mounted in a private mount namespace and read by the
# real sections; the verdict must be the true one. Every character str.splitlines() broke at
# is tried, and the whitespace str.split() split on.

LINE_BREAKS = ["\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\r"]


def _verdicts(check_id: str, facts: dict[str, Any]) -> list[Status]:
    """The statuses one check of the shipped profile gives over these facts."""
    profile = load_profile()
    check = next(c for c in profile.checks if c.id == check_id)
    made = tuple(new_fact(name, "forged", data, source="test") for name, data in facts.items())
    record = TargetRecord("forged", "local://", check.check.target, "", "", facts=made)
    only = dataclasses.replace(profile, checks=(check,))
    return [result.status for result in evaluate(only, record, profile.variables)]


def test_a_forged_sudoers_line_hides_no_nopasswd_rule(tmp_path: Path) -> None:
    """Comments holding a line break (for Python) and a fake `E:` line after it closed
    /etc/sudoers early, and so did an included file named with a newline and `E:`, so the
    NOPASSWD rule after them went unread. sudo itself (visudo) reads the file as valid."""
    forged = "".join(f"# note{sep}E:/etc/sudoers\n" for sep in LINE_BREAKS)
    sudoers = tmp_path / "sudoers"
    sudoers.write_text(
        f"Defaults env_reset\n{forged}@includedir /etc/sudoers.d\ndeploy ALL=(ALL) NOPASSWD: ALL\n"
    )
    checked = subprocess.run(["visudo", "-c", "-f", str(sudoers)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    setup = (
        f"mount --bind {sudoers} /etc/sudoers && mount -t tmpfs auditor-test /etc/sudoers.d && "
        "printf 'ops ALL=(ALL) ALL\\n' > \"$(printf '/etc/sudoers.d/ops\\nE:ops')\" && "
        'exec sh -c "$1"'
    )
    found = _in_private_mounts(setup, [BY_NAME["sudoers"]], secrets.token_hex(8))
    sudo = parsers.parse_sudoers(found["sudoers"].stdout)
    assert sudo["files"] == ["/etc/sudoers", "/etc/sudoers.d/ops\nE:ops"]
    assert [r["line"] for r in sudo["rules"]] == [
        "Defaults env_reset", "ops ALL=(ALL) ALL", "deploy ALL=(ALL) NOPASSWD: ALL",
    ]  # fmt: skip
    assert [r["file"] for r in sudo["nopasswd"]] == ["/etc/sudoers"]
    assert _verdicts("host.sudo.no-nopasswd", {"host.sudoers": sudo}) == [Status.FAIL]


def test_a_forged_sshd_config_line_cannot_turn_root_login_off(tmp_path: Path) -> None:
    """In files mode (sshd -T cannot run: no host keys in this /etc/ssh), comments holding a
    line break and a fake `L:PermitRootLogin no` came first, and the first value wins; so did
    an included file named with a newline and that text. sshd itself, given a host key, reads
    the same files and lets root log in."""
    forged = "".join(f"# hardened{sep}L:PermitRootLogin no\n" for sep in LINE_BREAKS)
    (tmp_path / "sshd_config").write_text(
        f"{forged}Include /etc/ssh/sshd_config.d/*.conf\nPermitRootLogin yes\n"
    )
    key = tmp_path / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    included = "/etc/ssh/sshd_config.d/a\nL:PermitRootLogin no\nL:#.conf"
    setup = (
        "mount -t tmpfs auditor-test /etc/ssh && mkdir /etc/ssh/sshd_config.d && "
        f"cp {tmp_path / 'sshd_config'} /etc/ssh/sshd_config && "
        f"printf 'X11Forwarding no\\n' > \"$(printf '{included}')\" && "
        f"/usr/sbin/sshd -T -h {key} > {tmp_path / 'effective'} && "
        'exec sh -c "$1"'
    )
    found = _in_private_mounts(setup, [BY_NAME["sshd_config"]], secrets.token_hex(8))
    effective = (tmp_path / "effective").read_text().splitlines()
    assert "permitrootlogin yes" in effective and "x11forwarding no" in effective
    sshd = parsers.parse_sshd_config(found["sshd_config"].stdout)
    assert sshd["source"] == "files"
    assert sshd["files"] == ["/etc/ssh/sshd_config", included]
    assert sshd["settings"] == {"permitrootlogin": "yes", "x11forwarding": "no"}
    assert _verdicts("host.sshd.no-root-login", {"host.sshd_config": sshd}) == [Status.FAIL]


def test_forged_audit_rules_are_not_rules(tmp_path: Path) -> None:
    """A rules file watching /etc/passwd only, with comments forging `R:` rules for the other
    identity files after a line break. No auditctl here, so the files are the evidence."""
    forged = "".join(
        f"## reviewed{sep}R:-w {path} -p wa -k identity\n"
        for sep, path in zip(
            LINE_BREAKS,
            ["/etc/shadow", "/etc/group", "/etc/gshadow", "/etc/sudoers"] * 3,
            strict=False,
        )  # fmt: skip
    )
    setup = (
        "awk=$(readlink -f /usr/bin/awk) && mount -t tmpfs auditor-test /etc && "
        'mkdir /etc/alternatives && ln -s "$awk" /etc/alternatives/awk && '  # the probe's awk
        "mkdir -p /etc/audit/rules.d && "
        f"printf '%s' '-w /etc/passwd -p wa -k identity\n{forged}' "
        "> /etc/audit/rules.d/identity.rules && "
        'exec sh -c "$1"'
    )
    found = _in_private_mounts(setup, [BY_NAME["audit"]], secrets.token_hex(8))
    audit = parsers.parse_audit(found["audit"].stdout)
    assert audit["rules"] is None  # no auditctl: the rules files decide
    assert audit["rules_files"] == ["-w /etc/passwd -p wa -k identity"]
    assert _verdicts("host.audit.identity-rules", {"host.audit": audit}) == [Status.FAIL]


def test_a_mount_source_name_cannot_make_a_docker_partition(tmp_path: Path) -> None:
    """tmpfs takes any source name, and the kernel escapes only space, tab, newline and
    backslash in it: one holding a line break and fields split by other whitespace forged a
    mount on /var/lib/docker (Python's split() splits on \\x1f and U+00A0 too)."""
    target = tmp_path / "mnt"
    target.mkdir()
    fields = ["tmpfs", "/var/lib/docker", "tmpfs", "rw"]
    sources = ["\x1f".join(fields)] + [f"x{sep}M:{chr(0xA0).join(fields)}" for sep in LINE_BREAKS]
    setup = (
        "".join(f"mount -t tmpfs {shlex.quote(source)} {target} && " for source in sources)
        + 'exec sh -c "$1"'
    )
    found = _in_private_mounts(setup, [BY_NAME["mounts"]], secrets.token_hex(8))
    mounts = parsers.parse_mounts(found["mounts"].stdout)
    ours = [m for m in mounts if m["target"] == str(target)]
    assert [m["source"] for m in ours] == sources
    assert not [m for m in mounts if m["target"] == "/var/lib/docker"]
    facts = {"host.mounts": mounts, "host.runtimes": {"docker": {"installed": True}}}
    assert _verdicts("host.docker.separate-partition", facts) == [Status.FAIL]


def test_a_host_without_awk_gives_errors_not_unescaped_output() -> None:
    """Every byte leaves through the escaping awk: without awk (its alternatives link gone,
    in a private mount namespace) the script prints no section, and each fact says why."""
    wanted = [BY_NAME["os"], BY_NAME["sudoers"]]
    nonce = secrets.token_hex(8)
    done = subprocess.run(
        ["unshare", "--mount", "sh", "-c",
         'mount -t tmpfs auditor-test /etc/alternatives && exec sh -c "$1"', "sh",
         build_script(wanted, [], nonce)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (127, "")
    result = CommandResult("sh -s", done.returncode, done.stdout, done.stderr, 0.1)
    facts = host_collector._facts(wanted, result, nonce, "host", "2026-12-06T00:00:00.000Z")
    for fact in facts.values():
        assert fact.error is not None and "has no awk" in fact.error, fact.error
