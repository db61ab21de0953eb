"""Views: the same checks seen through another framework (CIS Docker, CIS Kubernetes, PSS).

A view selects the checks of a profile that carry one kind of reference and groups them by
it; it defines no check of its own (its YAML has no place for one), so a check is written
once and judged the same whatever view a report is made for.

    id: cis-docker
    title: CIS Docker Benchmark v1.6.0 (view)
    profile: nist-800-190
    reference: cis_docker          # a key of the checks' `references`
    sections: {"1": Host configuration, ...}
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from auditor.errors import ProfileError
from auditor.model import Control, Coverage, References, SectionInfo
from auditor.profiles import (
    CompiledCheck,
    ControlEntry,
    LoadedProfile,
    _validate,
    load_profile,
    names_a_path,
)
from auditor.regularfile import is_file
from auditor.resources import benchmarks_dir
from auditor.yamlsrc import load_yaml

ReferenceKey = Literal["cis_docker", "cis_kubernetes", "cis_linux", "pss", "nist_800_53"]


class ViewDefinition(BaseModel):
    """benchmarks/views/<id>.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: str
    version: str
    description: str = ""
    profile: str = Field(description="the profile whose checks the view shows")
    reference: ReferenceKey
    values: list[str] = Field(
        default_factory=list, description="only references with these values (empty = any)"
    )
    group_by: Literal["reference", "control"] = Field(
        default="reference",
        description="one control per reference value, or keep the profile's controls",
    )
    sections: dict[str, str] = Field(
        default_factory=dict, description="section titles by the first part of a reference id"
    )


def views_dir() -> Path:
    return benchmarks_dir() / "views"


def available_views() -> list[Path]:
    return sorted(views_dir().glob("*.yaml"))


def view_path(name: str) -> Path | None:
    path = views_dir() / f"{name}.yaml"
    return path if is_file(path) else None


def load_named(name: str, overlays: Sequence[Path] = ()) -> LoadedProfile:
    """The profile or view `name` means, a profile with its overlays applied (a view takes
    none: overlays change the profile it is a view of)."""
    view = None if names_a_path(name) else view_path(name)
    if view is None:
        return load_profile(name, overlays)
    if overlays:
        raise ProfileError(
            "overlays change profiles, not views",
            item=name,
            hint=f"apply the overlay to the profile {name!r} is a view of",
        )
    return load_view(view)


def _natural(value: str) -> tuple[tuple[int, str], ...]:
    return tuple((int(p), "") if p.isdigit() else (0, p) for p in re.split(r"[.\-]", value))


def load_view(path: Path) -> LoadedProfile:
    """The view at `path`, built from its profile's compiled checks."""
    definition = _validate(ViewDefinition, load_yaml(path, ProfileError))
    base = load_profile(definition.profile)
    wanted = set(definition.values)

    def values_of(check: CompiledCheck) -> list[str]:
        found = getattr(check.check.references, definition.reference)
        return sorted((v for v in found if not wanted or v in wanted), key=_natural)

    selected = [(check, values) for check in base.checks if (values := values_of(check))]
    if not selected:
        raise ProfileError("the view selects no check", path=path, item=definition.id)
    if definition.group_by == "control":
        return _by_control(definition, base, [check for check, _ in selected], path)
    return _by_reference(definition, base, selected, path)


def _by_reference(
    definition: ViewDefinition,
    base: LoadedProfile,
    selected: list[tuple[CompiledCheck, list[str]]],
    path: Path,
) -> LoadedProfile:
    # A check is scored once, under the first (lowest) id it refers to; the control lists all.
    groups: dict[str, list[CompiledCheck]] = {}
    for check, values in selected:
        groups.setdefault(values[0], []).append(check)
    sections: dict[str, SectionInfo] = {}
    entries: list[ControlEntry] = []
    checks: list[CompiledCheck] = []
    label = definition.title.split(" (")[0]
    for value in sorted(groups, key=_natural):
        head = value.split(".")[0]
        section = sections.setdefault(
            head,
            SectionInfo(
                id=f"{definition.id}-{head}", title=definition.sections.get(head, f"{label} {head}")
            ),
        )
        members = [
            dataclasses.replace(c, control_id=value, section_id=section.id) for c in groups[value]
        ]
        control = Control(
            id=value,
            title=f"{label} {value}",
            text="; ".join(c.check.title for c in members),
            coverage=Coverage.AUTOMATED,
            references=References(**{definition.reference: [value]}),
            checks=[c.check for c in members],
        )
        entries.append(ControlEntry(control, section, str(path)))
        checks.extend(members)
    return _view_profile(definition, base, tuple(sections.values()), entries, checks, path)


def _by_control(
    definition: ViewDefinition, base: LoadedProfile, selected: list[CompiledCheck], path: Path
) -> LoadedProfile:
    chosen = {c.id for c in selected}
    entries = []
    for entry in base.controls:
        kept = [c for c in entry.control.checks if c.id in chosen]
        if kept:
            control = entry.control.model_copy(update={"checks": kept, "attestation": None})
            entries.append(ControlEntry(control, entry.section, entry.source))
    sections = tuple(dict.fromkeys(e.section for e in entries))
    return _view_profile(definition, base, sections, entries, selected, path)


def _view_profile(
    definition: ViewDefinition,
    base: LoadedProfile,
    sections: tuple[SectionInfo, ...],
    entries: list[ControlEntry],
    checks: list[CompiledCheck],
    path: Path,
) -> LoadedProfile:
    return dataclasses.replace(
        base,
        id=definition.id,
        title=definition.title,
        version=definition.version,
        description=definition.description or f"A view of {base.id} {base.version}.",
        sections=sections,
        controls=tuple(entries),
        checks=tuple(checks),
        sources=(str(path), *base.sources),
    )
