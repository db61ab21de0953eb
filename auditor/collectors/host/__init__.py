"""Host facts: one read-only script per host, its sections parsed by pure functions."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from functools import cache, partial
from typing import Any

from auditor.collectors.host.script import (
    ScanBudget,
    build_script,
    marker,
    new_nonce,
    split_output,
)
from auditor.collectors.host.sections import DEFAULT_PATHS, SECTIONS, FactUnavailable, Section
from auditor.facts import FactSpec, clean_data, fact_of, failed_fact, utc_now
from auditor.model import Fact, Subject
from auditor.targets.base import CommandResult, HostTarget

# Host facts whose items are subjects of their own (for_each), and how each item is named.
_ITEMS: dict[str, Any] = {
    # {"available": true, "units": {"ssh.service": {...}}} -> [{"name": "ssh.service", ...}]
    "systemd": lambda data: (
        [{"name": name, **unit} for name, unit in data["units"].items()]
        if data.get("available")
        else [{"name": "systemd", "_error": "systemd is not running on this host"}]
    ),
}
_SUBJECTS: dict[str, Any] = {
    "systemd": lambda item: Subject("service", str(item.get("name"))),
    "file_modes": lambda item: Subject("file", str(item.get("path"))),
    "mounts": lambda item: Subject("mount", str(item.get("target"))),
    "listening": lambda item: Subject(
        "socket", f"{item.get('proto')} {item.get('address')}:{item.get('port')}"
    ),
    "processes": lambda item: Subject("process", f"{item.get('comm')} (pid {item.get('pid')})"),
}


def _spec(section: Section) -> FactSpec:
    return FactSpec(
        name=f"host.{section.name}",
        description=section.description,
        subject=_SUBJECTS.get(section.name),
        items=_ITEMS.get(section.name),
    )


class HostCollector:
    """Gathers host.* facts through a HostTarget (local or SSH)."""

    facts: Mapping[str, FactSpec] = {f"host.{s.name}": _spec(s) for s in SECTIONS}

    def collect(
        self, target: Any, names: Collection[str], variables: Mapping[str, Any]
    ) -> Callable[[], dict[str, Fact]]:
        """Run the script now; parse its output in the function returned, which needs the
        target no more."""
        assert isinstance(target, HostTarget)
        wanted = [s for s in SECTIONS if f"host.{s.name}" in names]
        if not wanted:
            return dict
        paths = [*DEFAULT_PATHS, *variables.get("host_paths", [])]
        nonce = new_nonce()
        budget = ScanBudget(
            int(variables.get("fs_scan_max_seconds", ScanBudget.seconds)),
            int(variables.get("fs_scan_max_entries", ScanBudget.entries)),
        )
        script = build_script(
            wanted,
            paths,
            nonce,
            allow_dnf=bool(variables.get("host_probe_dnf", False)),
            scan_budget=budget,
        )
        started = utc_now()
        result = target.run_script(script, timeout=target.spec.command_timeout)
        return partial(_facts, wanted, result, nonce, target.name, started)


def _facts(
    wanted: list[Section], result: CommandResult, nonce: str, target: str, started: str
) -> dict[str, Fact]:
    """The facts of one host's script output, one per section wanted."""
    sections, complete = split_output(result.stdout, nonce)
    cut_in = _section_cut(result, nonce)
    facts: dict[str, Fact] = {}
    for section in wanted:
        name = f"host.{section.name}"
        source = f"{result.command} (section {section.name}): {_one_line(section.script)}"
        for shared in section.shared:
            source += f"; AUDITOR_{shared.name.upper()} from: {_one_line(shared.script)}"
        output = sections.get(section.name)
        if output is None:
            reason = "the host script stopped before this section"
            if result.cut_at is not None:
                reason = _cut_reason(result.cut_at, cut_in, section.name)
            elif not complete:
                reason += f" (exit {result.exit_status}: {_first_line(result.stderr)})"
            facts[name] = failed_fact(name, target, reason, source=source)
            continue
        try:
            data = clean_data(section.parse(output.stdout))
        except FactUnavailable as exc:
            facts[name] = failed_fact(name, target, str(exc), source=source)
            continue
        except Exception as exc:  # a parser bug is an error result, not a crash
            reason = f"could not parse the output: {type(exc).__name__}: {exc}"
            facts[name] = failed_fact(name, target, reason, source=source)
            continue
        facts[name] = fact_of(
            name,
            target,
            data,
            source=source,
            status=output.exit_status,
            stderr=output.stderr,
            collected_at=started,
        )
    return facts


def _section_cut(result: CommandResult, nonce: str) -> str | None:
    """The section being printed when the output reached its cap (the last one begun)."""
    if result.cut_at is None:
        return None
    begin = f"{marker(nonce)} BEGIN "
    start = result.stdout.rfind(begin)
    if start < 0:
        return None
    end = result.stdout.find("\n", start)
    return result.stdout[start + len(begin) : end] if end >= 0 else None


def _cut_reason(cap: int, cut_in: str | None, section: str) -> str:
    limit = f"the {cap / 1024**2:g} MiB cap on host output (--max-host-output)"
    if section == cut_in:
        return f"this section's output passed {limit}; the host script was stopped here"
    where = f" in section {cut_in}" if cut_in else ""
    return f"not read: the host's output passed {limit}{where}, and the script was stopped"


@cache  # the sections' scripts: the same few texts for every host
def _one_line(script: str) -> str:
    return re.sub(r"\s+", " ", script).strip()


def _first_line(text: str) -> str:
    return next((line for line in text.split("\n") if line.strip()), "no error output")
