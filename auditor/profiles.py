"""Loading benchmark profiles and overlays: validate, compile every expression, fail loudly.

A profile is a directory with profile.yaml (identity, variables, the control files it
includes) and one YAML file per part of the guide. Everything is checked at load time: unknown
keys, CEL that does not compile, unknown facts, duplicate ids, dangling overlay references.
Each problem names the file, the line and the item.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import jinja2
import pydantic

from auditor import messages, profile_cache
from auditor.collectors import FACT_PREFIX, fact_specs, kind_of_fact
from auditor.errors import ProfileError
from auditor.expr import Chain, Expression, ExpressionError, compile_expression
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
from auditor.regularfile import is_dir, is_file
from auditor.resources import benchmarks_dir
from auditor.yamlsrc import YamlDocument, load_yaml

DEFAULT_PROFILE = "nist-800-190"
CUSTOM_SECTION = SectionInfo(id="custom", title="Organisation checks (overlays)")

M = TypeVar("M", bound=pydantic.BaseModel)


@dataclass(frozen=True)
class CompiledCheck:
    """A check ready to run: its expressions compiled and the facts it needs worked out."""

    check: Check
    control_id: str
    section_id: str
    where: Expression | None
    assertion: Expression
    observe: tuple[tuple[str, Expression], ...]
    facts: frozenset[str]  # every fact it needs, the for_each fact included
    message: str  # Jinja source, checked at load; compiled when a failure first needs it
    message_reads: tuple[Chain, ...] = ()  # the paths the message reads (messages.py)
    exempt: tuple[tuple[str, Expression], ...] = ()  # (variable name, condition), in order

    @property
    def expressions(self) -> tuple[Expression, ...]:
        return (
            self.assertion,
            *((self.where,) if self.where else ()),
            *(expression for _, expression in self.observe),
            *(expression for _, expression in self.exempt),
        )

    @property
    def reads_facts(self) -> frozenset[str]:
        """The facts its CEL reads through `facts.` (the for_each fact is the subject)."""
        return frozenset().union(*(e.facts for e in self.expressions))

    @property
    def reads_variables(self) -> frozenset[str]:
        return frozenset().union(*(e.variables for e in self.expressions))

    @property
    def id(self) -> str:
        return self.check.id

    def render_message(self, observed: Mapping[str, Any], variables: Mapping[str, Any]) -> str:
        """The failure message, from the observed values and the variables in force only."""
        try:
            return messages.render(self.message, self.message_reads, observed, variables)
        except Exception:  # a message must never turn a verdict into a crash
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


def names_a_path(name: str) -> bool:
    """Whether `name` is a file or directory the user points at (not a shipped id)."""
    candidate = Path(name).expanduser()
    return is_file(candidate) or is_dir(candidate)


def resolve_profile(name: str) -> Path:
    """profile.yaml of a shipped profile id, or of a directory or file the user names."""
    candidate = Path(name).expanduser()
    if is_file(candidate):
        return candidate
    if is_file(candidate / "profile.yaml"):
        return candidate / "profile.yaml"
    shipped = benchmarks_dir() / name / "profile.yaml"
    if is_file(shipped):
        return shipped
    known = ", ".join(p.name for p in available_profiles()) or "none"
    shown = name if len(name) <= 80 else name[:77] + "..."
    raise ProfileError(f"unknown profile {shown!r} (shipped: {known})")


def load_profile(name: str = DEFAULT_PROFILE, overlays: Sequence[Path] = ()) -> LoadedProfile:
    """Load, validate and compile a profile and its overlays; ProfileError on any problem.
    (`views.load_named` also takes the name of a view of a profile.)"""
    manifest_path = resolve_profile(name)
    cached = profile_cache.load(manifest_path, overlays)
    if isinstance(cached, LoadedProfile):
        return cached
    loaded = _load(manifest_path, overlays)
    profile_cache.save(manifest_path, overlays, loaded, [*loaded.sources, *loaded.overlays])
    return loaded


def _load(manifest_path: Path, overlays: Sequence[Path]) -> LoadedProfile:
    manifest_doc = load_yaml(manifest_path, ProfileError)
    manifest = _validate(ProfileManifest, manifest_doc)
    builder = _Builder()
    variables = {key: spec.default for key, spec in manifest.variables.items()}

    parts: list[tuple[YamlDocument, ProfileFile]] = []
    for index, include in enumerate(manifest.include):
        path = manifest_path.parent / include
        if not is_file(path):
            builder.problem("included file not found", manifest_doc, ["include", index], include)
            continue
        doc = load_yaml(path, ProfileError)
        try:
            parts.append((doc, _validate(ProfileFile, doc)))
        except ProfileError as exc:
            builder.problems.append(exc)
    descriptions = {key: spec.description for key, spec in manifest.variables.items()}
    for doc, part in parts:
        for key, spec in part.variables.items():
            if key in variables:
                builder.problem(
                    "variable defined twice in the profile", doc, ["variables", key], key
                )
            variables[key] = spec.default
            descriptions[key] = spec.description
        builder.define(doc, part.section, part.controls, "controls")
    for doc, part in parts:
        for index, extension in enumerate(part.extend):
            builder.extend(doc, extension.id, extension.checks, ["extend", index])

    disabled: list[str] = []
    severities: dict[str, Severity] = {}
    for overlay_path in overlays:
        doc = load_yaml(overlay_path, ProfileError)
        overlay = _validate(Overlay, doc)
        builder.problems.extend(_check_overlay(overlay, manifest, doc, variables))
        variables.update({k: v for k, v in overlay.variables.items() if k in variables})
        for index, control in enumerate(overlay.controls):
            if control.id in builder.controls:
                builder.extend(doc, control.id, control.checks, ["controls", index])
            else:
                builder.define(doc, CUSTOM_SECTION, [control], "controls", index)
        for check_id in overlay.disable:
            builder.require_check(doc, check_id, ["disable", overlay.disable.index(check_id)])
        for check_id in overlay.severity:
            builder.require_check(doc, check_id, ["severity", check_id])
        disabled.extend(overlay.disable)
        severities.update(overlay.severity)

    checks = builder.compile(set(disabled), severities)
    if builder.problems:
        raise _combine(builder.problems)
    entries = builder.entries(set(disabled), severities)
    return LoadedProfile(
        id=manifest.id,
        title=manifest.title,
        version=manifest.version,
        description=manifest.description,
        variables=variables,
        variable_descriptions=descriptions,
        sections=tuple(builder.sections),
        controls=tuple(entries),
        checks=tuple(checks),
        sources=(str(manifest_path), *(str(doc.path) for doc, _ in parts)),
        overlays=tuple(str(o) for o in overlays),
        disabled=tuple(disabled),
    )


@dataclass
class _Placed:
    """A check and where it was written: for ordering, duplicates and error lines."""

    check: Check
    control_id: str
    doc: YamlDocument
    location: list[str | int]


class _Builder:
    """Collects controls and checks from every file, with every problem found on the way."""

    def __init__(self) -> None:
        self.controls: dict[str, ControlEntry] = {}
        self.sections: list[SectionInfo] = []
        self.placed: list[_Placed] = []
        self.problems: list[ProfileError] = []

    def problem(self, message: str, doc: YamlDocument, loc: list[str | int], item: str) -> None:
        self.problems.append(ProfileError(message, path=doc.path, line=doc.line_of(loc), item=item))

    def define(
        self,
        doc: YamlDocument,
        section: SectionInfo | None,
        controls: list[Control],
        key: str,
        offset: int = 0,
    ) -> None:
        if controls and section is None:
            self.problem("a file that defines controls needs `section:`", doc, [key], key)
            return
        for index, control in enumerate(controls, start=offset):
            assert section is not None
            if control.id in self.controls:
                self.problem("duplicate control id", doc, [key, index], control.id)
                continue
            if section not in self.sections:
                self.sections.append(section)
            self.controls[control.id] = ControlEntry(control, section, str(doc.path))
            self._place(doc, control.id, control.checks, [key, index])

    def extend(
        self, doc: YamlDocument, control_id: str, checks: list[Check], loc: list[str | int]
    ) -> None:
        if control_id not in self.controls:
            self.problem("no such control in the profile", doc, loc, control_id)
            return
        self._place(doc, control_id, checks, loc)

    def _place(
        self, doc: YamlDocument, control_id: str, checks: list[Check], loc: list[str | int]
    ) -> None:
        for index, check in enumerate(checks):
            self.placed.append(_Placed(check, control_id, doc, [*loc, "checks", index]))

    def require_check(self, doc: YamlDocument, check_id: str, loc: list[str | int]) -> None:
        if all(p.check.id != check_id for p in self.placed):
            self.problem("no such check in the profile", doc, loc, check_id)

    def compile(self, disabled: set[str], severities: dict[str, Severity]) -> list[CompiledCheck]:
        compiled: list[CompiledCheck] = []
        first: dict[str, _Placed] = {}
        for placed in self.placed:
            check = placed.check
            if check.id in first:
                self.problem(
                    f"duplicate check id (first defined in {first[check.id].doc.path})",
                    placed.doc,
                    placed.location,
                    check.id,
                )
                continue
            first[check.id] = placed
            if check.id in severities:
                check = check.model_copy(update={"severity": severities[check.id]})
            try:
                result = _compile_check(check, self.controls[placed.control_id])
            except _CheckProblem as exc:
                self.problem(exc.message, placed.doc, [*placed.location, exc.key], check.id)
                continue
            if check.id not in disabled:
                compiled.append(result)
        return compiled

    def entries(self, disabled: set[str], severities: dict[str, Severity]) -> list[ControlEntry]:
        """The controls with all their checks gathered, overlay changes applied."""
        by_control: dict[str, list[Check]] = {cid: [] for cid in self.controls}
        for placed in self.placed:
            check = placed.check
            if check.id in disabled:
                continue
            if check.id in severities:
                check = check.model_copy(update={"severity": severities[check.id]})
            by_control[placed.control_id].append(check)
        return [
            ControlEntry(
                entry.control.model_copy(update={"checks": by_control[cid]}),
                entry.section,
                entry.source,
            )
            for cid, entry in self.controls.items()
        ]


def _validate(model: type[M], doc: YamlDocument) -> M:
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
    overlay: Overlay, manifest: ProfileManifest, doc: YamlDocument, known_variables: dict[str, Any]
) -> list[ProfileError]:
    problems = []
    if overlay.extends != manifest.id:
        shown = overlay.extends if len(overlay.extends) <= 80 else overlay.extends[:77] + "..."
        problems.append(
            ProfileError(
                f"extends {shown!r} but the profile is {manifest.id!r}",
                path=doc.path,
                line=doc.line_of(["extends"]),
            )
        )
    for key, value in overlay.variables.items():
        problem = (
            variable_problem(value, known_variables[key])
            if key in known_variables
            else "unknown variable"
        )
        if problem:
            problems.append(
                ProfileError(problem, path=doc.path, line=doc.line_of(["variables", key]), item=key)
            )
    return problems


_TYPE_NAMES = {bool: "a boolean", int: "a number", str: "a string", list: "a list", dict: "a map"}


def _kind(value: Any) -> type | None:
    """The JSON kind of a value: bool, int (any number), str, list or dict; None for null."""
    for kind in (bool, str, list, dict):
        if isinstance(value, kind):
            return kind
    return int if isinstance(value, (int, float)) else None


def _describe(value: Any) -> str:
    kind = _kind(value)
    if kind in (list, dict):
        return _TYPE_NAMES[kind]
    return "null" if value is None else repr(value)[:60]


def _integer_past_64_bits(value: Any) -> int | None:
    """The first integer in `value` (walked without recursion) that CEL cannot hold."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, int) and not -(2**63) <= item < 2**64:
            return item
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return None


def variable_problem(value: Any, declared: Any) -> str | None:
    """Why `value` cannot stand for a variable declared with the default `declared` (same JSON
    kind; a list's items the kind of the default's items), or None. A null default takes any."""
    if (big := _integer_past_64_bits(value)) is not None:
        digits = str(big) if len(str(big)) <= 30 else str(big)[:27] + "..."
        return f"the integer {digits} does not fit in 64 bits (CEL's int)"
    want, got = _kind(declared), _kind(value)
    if want is None:
        return None
    if got is not want:
        return f"expected {_TYPE_NAMES[want]}, got {_describe(value)}"
    if want is list and declared and value:
        item_kind = _kind(declared[0])
        if item_kind is not None and all(_kind(item) is item_kind for item in declared):
            for index, item in enumerate(value):
                if _kind(item) is not item_kind:
                    expected = _TYPE_NAMES[item_kind]
                    return f"item {index + 1}: expected {expected}, got {_describe(item)}"
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
    exempt = tuple((name, compiled("exempt", source)) for name, source in check.exempt.items())
    for name, expression in exempt:
        if name not in expression.variables:
            reason = f"exempt: {name}: the condition does not read vars.{name}"
            raise _CheckProblem("exempt", reason)
    needed = set(assertion.facts) | (where.facts if where else set())
    for _, expression in (*observe, *exempt):
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
    try:  # syntax errors are load errors; compiling waits for a failure to show
        message_reads = messages.template_reads(check.message) if check.message else ()
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
        message=check.message,
        message_reads=message_reads,
        exempt=exempt,
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
