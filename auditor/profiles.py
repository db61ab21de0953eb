"""Loading benchmark profiles and overlays: validate, compile every expression, fail loudly.

A profile is a directory with profile.yaml (identity, variables, the control files it
includes) and one YAML file per part of the guide. Everything is checked at load time: unknown
keys, CEL that does not compile, unknown facts, duplicate ids, dangling overlay references.
Each problem names the file, the line and the item.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import pydantic
from jinja2.sandbox import ImmutableSandboxedEnvironment

from auditor.collectors import FACT_PREFIX, fact_specs, kind_of_fact
from auditor.errors import ProfileError
from auditor.expr import Expression, ExpressionError, compile_expression
from auditor.model import (
    Check,
    Control,
    Overlay,
    ProfileFile,
    ProfileManifest,
    SectionInfo,
    Severity,
    TargetKind,
)
from auditor.resources import benchmarks_dir
from auditor.yamlsrc import YamlDocument, load_yaml

DEFAULT_PROFILE = "nist-800-190"
CUSTOM_SECTION = SectionInfo(id="custom", title="Organisation checks (overlays)")

_MESSAGES = ImmutableSandboxedEnvironment(
    autoescape=False,  # messages are plain text; every reporter escapes for its own format
    undefined=jinja2.ChainableUndefined,
)


@dataclass(frozen=True)
class CompiledCheck:
    """A check ready to run: its expressions compiled and the facts it needs worked out."""

    check: Check
    control_id: str
    section_id: str
    where: Expression | None
    assertion: Expression
    observe: tuple[tuple[str, Expression], ...]
    facts: frozenset[str]
    message: jinja2.Template | None

    @property
    def id(self) -> str:
        return self.check.id

    def render_message(self, subject: Any, variables: Any, observed: Any) -> str:
        if self.message is None:
            return ""
        try:
            return self.message.render(subject=subject, vars=variables, observed=observed).strip()
        except Exception:  # noqa: BLE001 - a message must never turn a verdict into a crash
            return self.check.message


@dataclass(frozen=True)
class ControlEntry:
    control: Control
    section: SectionInfo
    source: str


@dataclass(frozen=True)
class LoadedProfile:
    """A profile with overlays applied and every check compiled."""

    id: str
    title: str
    version: str
    description: str
    variables: dict[str, Any]
    variable_descriptions: dict[str, str]
    sections: tuple[SectionInfo, ...]
    controls: tuple[ControlEntry, ...]
    checks: tuple[CompiledCheck, ...]
    sources: tuple[str, ...]
    overlays: tuple[str, ...] = ()
    disabled: tuple[str, ...] = field(default=())

    def checks_for(self, kind: TargetKind) -> list[CompiledCheck]:
        return [c for c in self.checks if c.check.target is kind]

    def control(self, control_id: str) -> ControlEntry:
        for entry in self.controls:
            if entry.control.id == control_id:
                return entry
        raise KeyError(control_id)


def available_profiles() -> list[Path]:
    """The shipped profiles' directories."""
    root = benchmarks_dir()
    return sorted(p.parent for p in root.glob("*/profile.yaml"))


def resolve_profile(name: str) -> Path:
    """profile.yaml of a shipped profile id, or of a directory or file the user names."""
    candidate = Path(name).expanduser()
    if candidate.is_file():
        return candidate
    if (candidate / "profile.yaml").is_file():
        return candidate / "profile.yaml"
    shipped = benchmarks_dir() / name / "profile.yaml"
    if shipped.is_file():
        return shipped
    known = ", ".join(p.name for p in available_profiles()) or "none"
    raise ProfileError(f"unknown profile {name!r} (shipped: {known})", item=name)


def load_profile(name: str = DEFAULT_PROFILE, overlays: Sequence[Path] = ()) -> LoadedProfile:
    """Load, validate and compile a profile and its overlays; ProfileError on any problem."""
    problems: list[ProfileError] = []
    manifest_path = resolve_profile(name)
    manifest_doc = load_yaml(manifest_path, ProfileError)
    manifest = _validate(ProfileManifest, manifest_doc)
    variables = {key: spec.default for key, spec in manifest.variables.items()}
    descriptions = {key: spec.description for key, spec in manifest.variables.items()}

    entries: list[ControlEntry] = []
    sections: list[SectionInfo] = []
    docs: dict[str, YamlDocument] = {}
    for index, include in enumerate(manifest.include):
        path = manifest_path.parent / include
        if not path.is_file():
            line = manifest_doc.line_of(["include", index])
            problems.append(ProfileError("included file not found", path=manifest_path,
                                         line=line, item=include))
            continue
        doc = load_yaml(path, ProfileError)
        try:
            part = _validate(ProfileFile, doc)
        except ProfileError as exc:
            problems.append(exc)
            continue
        docs[str(path)] = doc
        sections.append(part.section)
        entries.extend(ControlEntry(c, part.section, str(path)) for c in part.controls)

    disabled: list[str] = []
    severities: dict[str, Severity] = {}
    for overlay_path in overlays:
        doc = load_yaml(overlay_path, ProfileError)
        overlay = _validate(Overlay, doc)
        docs[str(overlay_path)] = doc
        problems.extend(_check_overlay(overlay, manifest, doc))
        variables.update({k: v for k, v in overlay.variables.items() if k in variables})
        disabled.extend(overlay.disable)
        severities.update(overlay.severity)
        entries = _merge_controls(entries, overlay.controls, str(overlay_path), problems, doc)
        if overlay.controls and CUSTOM_SECTION not in sections:
            sections.append(CUSTOM_SECTION)

    entries = _apply_changes(entries, set(disabled), severities, problems, overlays)
    checks = _compile_all(entries, docs, problems)
    if problems:
        raise _combine(problems)
    return LoadedProfile(
        id=manifest.id,
        title=manifest.title,
        version=manifest.version,
        description=manifest.description,
        variables=variables,
        variable_descriptions=descriptions,
        sections=tuple(sections),
        controls=tuple(entries),
        checks=tuple(checks),
        sources=(str(manifest_path), *(e for e in docs if e not in {str(o) for o in overlays})),
        overlays=tuple(str(o) for o in overlays),
        disabled=tuple(disabled),
    )


def _validate[M: pydantic.BaseModel](model: type[M], doc: YamlDocument) -> M:
    if not isinstance(doc.data, dict):
        raise ProfileError("expected a mapping at the top level", path=doc.path, line=1)
    try:
        return model.model_validate(doc.data)
    except pydantic.ValidationError as exc:
        errors = [_pydantic_problem(doc, err) for err in exc.errors()]
        raise _combine(errors) from None


def _pydantic_problem(doc: YamlDocument, err: Any) -> ProfileError:
    loc = tuple(err["loc"])
    item = _item_along(doc.data, loc)
    field_path = ".".join(str(p) for p in loc)
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        message = f"unknown key {loc[-1]!r}"
    elif err["type"] == "missing":
        message = f"missing required key {loc[-1]!r}"
    else:
        message = f"{field_path}: {message}"
    return ProfileError(message, path=doc.path, line=doc.line_of(loc), item=item)


def _item_along(data: Any, loc: Iterable[Any]) -> str | None:
    """The id of the innermost check or control on the way to `loc`."""
    item = None
    node = data
    for part in loc:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
        if isinstance(node, dict) and isinstance(node.get("id"), str):
            item = node["id"]
    return item


def _check_overlay(
    overlay: Overlay, manifest: ProfileManifest, doc: YamlDocument
) -> list[ProfileError]:
    problems = []
    if overlay.extends != manifest.id:
        problems.append(ProfileError(
            f"extends {overlay.extends!r} but the profile is {manifest.id!r}",
            path=doc.path, line=doc.line_of(["extends"]), item=overlay.extends,
        ))
    for key in overlay.variables:
        if key not in manifest.variables:
            problems.append(ProfileError(
                "unknown variable", path=doc.path, line=doc.line_of(["variables", key]), item=key
            ))
    return problems


def _merge_controls(
    entries: list[ControlEntry],
    additions: list[Control],
    source: str,
    problems: list[ProfileError],
    doc: YamlDocument,
) -> list[ControlEntry]:
    merged = list(entries)
    for index, addition in enumerate(additions):
        existing = next((i for i, e in enumerate(merged) if e.control.id == addition.id), None)
        if existing is None:
            merged.append(ControlEntry(addition, CUSTOM_SECTION, source))
            continue
        entry = merged[existing]
        # Adding checks to a shipped control keeps the shipped text; only `checks` is taken.
        if not addition.checks:
            problems.append(ProfileError(
                "control exists in the profile: an overlay may only add checks to it",
                path=doc.path, line=doc.line_of(["controls", index]), item=addition.id,
            ))
            continue
        control = entry.control.model_copy(
            update={"checks": [*entry.control.checks, *addition.checks]}
        )
        merged[existing] = ControlEntry(control, entry.section, entry.source)
    return merged


def _apply_changes(
    entries: list[ControlEntry],
    disabled: set[str],
    severities: dict[str, Severity],
    problems: list[ProfileError],
    overlays: Sequence[Path],
) -> list[ControlEntry]:
    known = {c.id for e in entries for c in e.control.checks}
    where = str(overlays[-1]) if overlays else None
    for check_id in sorted((disabled | set(severities)) - known):
        problems.append(ProfileError("no such check in the profile", path=where, item=check_id))
    changed = []
    for entry in entries:
        checks = [
            c.model_copy(update={"severity": severities[c.id]}) if c.id in severities else c
            for c in entry.control.checks
            if c.id not in disabled
        ]
        control = entry.control.model_copy(update={"checks": checks})
        changed.append(ControlEntry(control, entry.section, entry.source))
    return changed


def _compile_all(
    entries: list[ControlEntry], docs: dict[str, YamlDocument], problems: list[ProfileError]
) -> list[CompiledCheck]:
    compiled: list[CompiledCheck] = []
    seen_checks: dict[str, str] = {}
    seen_controls: set[str] = set()
    for entry in entries:
        doc = docs[entry.source]
        control_index = _index_of(doc.data.get("controls", []), entry.control.id)
        if entry.control.id in seen_controls:
            problems.append(ProfileError("duplicate control id", path=doc.path,
                                         line=doc.line_of(["controls", control_index]),
                                         item=entry.control.id))
        seen_controls.add(entry.control.id)
        for check in entry.control.checks:
            checks_data = (
                doc.data["controls"][control_index].get("checks", [])
                if control_index is not None else []
            )
            loc: list[str | int] = ["controls", control_index or 0, "checks",
                                    _index_of(checks_data, check.id) or 0]
            if check.id in seen_checks:
                problems.append(ProfileError(
                    f"duplicate check id (first defined in {seen_checks[check.id]})",
                    path=doc.path, line=doc.line_of(loc), item=check.id,
                ))
                continue
            seen_checks[check.id] = entry.source
            try:
                compiled.append(_compile_check(check, entry))
            except _CheckProblem as exc:
                problems.append(ProfileError(exc.message, path=doc.path,
                                             line=doc.line_of([*loc, exc.key]), item=check.id))
    return compiled


def _index_of(items: Any, item_id: str) -> int | None:
    if isinstance(items, list):
        for index, item in enumerate(items):
            if isinstance(item, dict) and item.get("id") == item_id:
                return index
    return None


class _CheckProblem(Exception):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


def _compile_check(check: Check, entry: ControlEntry) -> CompiledCheck:
    def compiled(key: str, source: str) -> Expression:
        try:
            return compile_expression(source)
        except ExpressionError as exc:
            raise _CheckProblem(key, f"{key}: {exc}") from exc

    assertion = compiled("assert", check.assert_)
    where = compiled("where", check.where) if check.where else None
    observe = tuple((name, compiled("observe", source)) for name, source in check.observe.items())
    needed = set(assertion.facts) | (where.facts if where else set())
    for _, expression in observe:
        needed |= expression.facts
    if check.for_each:
        needed.add(check.for_each)
    specs = fact_specs(check.target)
    prefix = FACT_PREFIX[check.target]
    for fact in sorted(needed):
        if kind_of_fact(fact) is not check.target:
            raise _CheckProblem(
                "assert", f"fact {fact!r} is not a {check.target} fact (names start {prefix}.)"
            )
        if fact not in specs:
            raise _CheckProblem("assert", f"unknown fact {fact!r}")
    if check.for_each and specs[check.for_each].subject is None:
        raise _CheckProblem("for_each", f"fact {check.for_each!r} is not a list of subjects")
    try:
        message = _MESSAGES.from_string(check.message) if check.message else None
    except jinja2.TemplateSyntaxError as exc:
        raise _CheckProblem("message", f"message: {exc.message}") from exc
    return CompiledCheck(
        check=check,
        control_id=entry.control.id,
        section_id=entry.section.id,
        where=where,
        assertion=assertion,
        observe=observe,
        facts=frozenset(needed),
        message=message,
    )


def _combine(problems: Sequence[ProfileError]) -> ProfileError:
    first = problems[0]
    first.more = tuple(str(p) for p in problems[1:])
    return first


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schemas of the profile formats, generated from the models."""
    return {
        "profile.schema.json": ProfileManifest.model_json_schema(by_alias=True),
        "controls.schema.json": ProfileFile.model_json_schema(by_alias=True),
        "overlay.schema.json": Overlay.model_json_schema(by_alias=True),
    }


def render_schema(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
