"""CEL behind a two-function interface (`compile_expression`, `Scope.evaluate`), plus the named
helper functions checks may call.

The CEL engine is the Rust-core `common-expression-language` package. Two of its costs shape
this module. Converting Python data into CEL values is paid per value, so a `Scope` converts
the facts of a group of checks once per target and then swaps only the subject. Selecting a
member copies the selected value (`facts.host.packages.packages` copies the package list, on
every iteration of a comprehension that reads it: 0.4 ms for 800 packages), while reading a
top-level variable does not: so each `facts.<kind>.<name>` with the keys that follow it is
compiled as a top-level variable of its own (`fact_alias`).
"""

from __future__ import annotations

import fnmatch
import importlib.machinery
import importlib.util
import json
import re
import sys
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, cached_property, lru_cache, wraps
from types import ModuleType
from typing import Any

import re2  # google-re2: linear time, no backtracking


def _load_cel() -> ModuleType:
    """The CEL extension module alone. The `cel` package's __init__ also imports its
    interactive shell (prompt_toolkit, pygments): a third of a second on every start."""
    loaded = sys.modules.get("cel.cel") or sys.modules.get("cel")
    if loaded is not None:  # already imported: a second copy of the extension would panic
        return loaded
    spec = importlib.util.find_spec("cel")
    if spec is not None and spec.submodule_search_locations:
        for directory in spec.submodule_search_locations:
            for suffix in importlib.machinery.EXTENSION_SUFFIXES:
                path = f"{directory}/cel{suffix}"
                extension = importlib.util.spec_from_file_location("cel.cel", path)
                if extension is not None and extension.loader is not None:
                    try:
                        module = importlib.util.module_from_spec(extension)
                        extension.loader.exec_module(module)
                    except ImportError:
                        continue
                    sys.modules.setdefault("cel.cel", module)
                    return module
    import cel  # the package layout changed: take the slow, ordinary way

    return cel


cel = _load_cel()

VARIABLES = frozenset({"subject", "facts", "vars", "target", "now"})

# Fact references in an expression: facts.<kind>.<name>, the dotted fact name.
_FACT_REF = re.compile(r"(?<![.\w])facts\.([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)\b")
# A CEL string literal: quoted or triple-quoted (a raw or bytes prefix is matched below).
_STRING_LITERAL = "|".join(
    (
        r"'''(?:\\.|[^\\])*?'''",
        r'"""(?:\\.|[^\\])*?"""',
        r"'(?:\\.|[^'\\\n])*'",
        r'"(?:\\.|[^"\\\n])*"',
    )
)
# One step of a member chain (.a, ['b'], [0]), a method call (.exists(...)) not included.
_STEP = r"\.[A-Za-z_][A-Za-z0-9_]*(?![A-Za-z0-9_]*\s*\()|\[(?:'[^']*'|\"[^\"]*\"|\d+)\]"
_TAIL = rf"(?:{_STEP})*"  # the member chain that follows a reference
# A string literal, or a reference to a fact or to `subject` with the chain after it: the
# references are rewritten and analysed outside string literals only.
_STRING_OR_REFERENCE = re.compile(
    rf"(?P<string>(?:[rR][bB]?|[bB][rR]?)?(?:{_STRING_LITERAL}))"
    rf"|(?:{_FACT_REF.pattern}|(?P<subject>(?<![.\w])subject\b))(?=(?P<tail>{_TAIL}))"
)
# get(<fact chain>, 'key', default): the call before a chain and the literal key after it.
_GET_CALL = re.compile(r"\bget\(\s*\Z")
# has(<chain>): the macro needs the chain's last member selected, not part of a variable.
_HAS_CALL = re.compile(r"\bhas\(\s*\Z")
# A key that can stand in a variable name as it is; any other is written in hex.
_PLAIN_KEY = re.compile(r"[A-Za-z0-9]+(?:_[A-Za-z0-9]+)*")
_UNDEFINED = re.compile(r"Undefined variable or function: '(\w+)'")
_GET_KEY = re.compile(r"\s*,\s*(?:'([^'\\]*)'|\"([^\"\\]*)\")")
_VAR_REF = re.compile(r"\bvars\.([A-Za-z_][A-Za-z0-9_]*)")
# Member chains the assertion reads (subject.a.b['c'], facts.host.sysctl['x']), stopping
# before a method call so `subject.Mounts.exists(...)` records `subject.Mounts`.
_CHAIN = re.compile(rf"\b(?:subject|facts)(?:{_STEP})+")
# Variables bound by comprehension macros: list.exists(m, ...), map.all(k, ...).
_COMPREHENSION_VAR = re.compile(
    r"\.(?:all|exists|exists_one|map|filter)\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*,"
)
# CEL's own functions and macros (cel-spec standard definitions) that this engine provides.
_BUILTINS = frozenset(
    {
        "size", "startsWith", "endsWith", "contains", "matches", "string", "int", "uint",
        "double", "bool", "bytes", "dyn", "type", "timestamp", "duration", "has", "all",
        "exists", "exists_one", "map", "filter", "getFullYear", "getMonth", "getDate",
        "getDayOfMonth", "getDayOfWeek", "getDayOfYear", "getHours", "getMinutes",
        "getSeconds", "getMilliseconds", "max", "min",
    }
)  # fmt: skip


class ExpressionError(ValueError):
    """A CEL expression does not compile or names something unknown."""


class EvaluationError(RuntimeError):
    """A CEL expression failed on this data (missing key, wrong type, helper raised)."""


# --- named helper functions (each unit tested) -----------------------------------------------


def _mode_at_most(mode: str | int, limit: str | int) -> bool:
    """True when `mode` grants no permission bit outside `limit` ('0640' within '0644')."""
    actual = int(mode, 8) if isinstance(mode, str) else mode
    allowed = int(limit, 8) if isinstance(limit, str) else limit
    return (actual & 0o7777 & ~allowed) == 0


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version))


def _version_at_least(version: str, minimum: str) -> bool:
    """`version` >= `minimum`: '1.28.3' >= '1.27', and a pre-release orders before its
    release ('1.28.0-rc.1' < '1.28.0'). A leading 'v', build metadata ('+dfsg1', '+k3s1')
    and repack marks ('~ds1') are ignored. Semantic and PEP 440 versions compare by
    packaging.version; the rest (kernels such as '6.1.0-18-amd64', '~' pre-releases) by
    Debian's rules; what neither parses ('...el9_4.x86_64') by its numbers."""
    from debian.debian_support import Version as DebianVersion
    from packaging.version import InvalidVersion, Version

    def plain(text: str) -> str:
        text = text.strip().removeprefix("v").removeprefix("V").split("+")[0]
        return re.sub(r"~(ds|dfsg|repack)\d*$", "", text)

    mine, least = plain(version), plain(minimum)
    try:
        return Version(mine) >= Version(least)
    except InvalidVersion:
        pass
    try:
        return DebianVersion(mine) >= DebianVersion(least)
    except ValueError:
        return _version_tuple(mine) >= _version_tuple(least)


def _flag(args: list[Any] | str, name: str) -> str | None:
    """The value of command-line flag `name` in `args`, the last one winning as in Go's flag
    package: ['--anonymous-auth=false'] -> 'false'; a bare '--flag' -> 'true'; absent -> null."""
    items = args.split() if isinstance(args, str) else [str(a) for a in args]
    key = "--" + name.lstrip("-")
    value: str | None = None
    for index, item in enumerate(items):
        if item == key:
            following = items[index + 1] if index + 1 < len(items) else ""
            value = following if following and not following.startswith("-") else "true"
        elif item.startswith(key + "="):
            value = item[len(key) + 1 :]
    return value


def _glob(value: str, pattern: str) -> bool:
    """Shell-style match: glob('nginx:1.25', 'nginx:*')."""
    return fnmatch.fnmatchcase(value, pattern)


def _glob_any(value: str, patterns: list[str]) -> bool:
    """True when `value` matches any of the shell-style patterns."""
    return any(fnmatch.fnmatchcase(value, p) for p in patterns)


def _path_within(path: str, parents: list[str]) -> str | None:
    """The first of `parents` that `path` is or lies under ('/etc/ssh' within ['/etc']), else
    null. '/' only matches '/' itself, so it must be listed to catch the whole file system."""
    normal = "/" + path.strip("/")
    for parent in parents:
        base = "/" + parent.strip("/")
        if normal == base or (base != "/" and normal.startswith(base + "/")):
            return parent
    return None


def _days_since(when: str) -> float:
    """Days between an ISO 8601 / RFC 3339 time and now (negative for the future)."""
    moment = datetime.fromisoformat(when.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (datetime.now(UTC) - moment).total_seconds() / 86400


def _lower(value: str) -> str:
    return value.lower()


def _upper(value: str) -> str:
    return value.upper()


def _split(value: str, separator: str) -> list[str]:
    return value.split(separator)


def _join(values: list[Any], separator: str) -> str:
    return separator.join(str(v) for v in values)


def _trim(value: str) -> str:
    return value.strip()


def _regex_find(value: str, pattern: str) -> str | None:
    """The first match of `pattern` (RE2 syntax) in `value`, or null."""
    found = _regex(pattern).search(value)
    return found.group(0) if found else None


@lru_cache(maxsize=256)
def _regex(pattern: str) -> Any:
    """`pattern` compiled by RE2, which runs in time linear in the text: a check's regex
    cannot backtrack catastrophically (`(a+)+$`). ValueError says why a pattern is invalid."""
    options = re2.Options()
    options.log_errors = False  # RE2 would print its own line on stderr
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args else "invalid"
        if isinstance(reason, str) and reason.endswith(": " + pattern):
            reason = reason[: -len(pattern) - 2]
        raise ValueError(f"invalid regex {pattern!r}: {reason}") from None


def _keys(mapping: Mapping[str, Any]) -> list[str]:
    return list(mapping)


def _get(mapping: Mapping[str, Any] | None, key: str, default: Any) -> Any:
    """mapping[key] when present and not null, else `default`: written-down defaults."""
    if mapping is None:
        return default
    value = mapping.get(key)
    return default if value is None else value


# --- the evaluation budget ---------------------------------------------------------------------

EVALUATION_BUDGET = 10.0  # seconds one expression may take on one subject
_budget = threading.local()  # .deadline: time.monotonic() by which this thread's must end


class BudgetExceeded(RuntimeError):
    """An expression ran past EVALUATION_BUDGET."""


def _within_budget(function: Callable[..., Any]) -> Callable[..., Any]:
    """`function`, refusing to start once the expression calling it is past its deadline.
    The CEL core holds the GIL and offers no way to stop it: the helpers and the end of each
    evaluation are where a budget can be enforced."""

    @wraps(function)
    def checked(*args: Any) -> Any:
        deadline = getattr(_budget, "deadline", None)
        if deadline is not None and time.monotonic() > deadline:
            raise BudgetExceeded(f"stopped after the {EVALUATION_BUDGET:g}s evaluation budget")
        return function(*args)

    return checked


def _execute(program: Any, context: Any) -> Any:
    """`program` run in `context` within EVALUATION_BUDGET: BudgetExceeded past it."""
    started = time.monotonic()
    _budget.deadline = started + EVALUATION_BUDGET
    try:
        value = program.execute(context)
    finally:
        _budget.deadline = None
    elapsed = time.monotonic() - started
    if elapsed > EVALUATION_BUDGET:
        raise BudgetExceeded(
            f"took {elapsed:.1f}s, over the {EVALUATION_BUDGET:g}s evaluation budget"
        )
    return value


_HELPERS: dict[str, Callable[..., Any]] = {
    "mode_at_most": _mode_at_most,
    "version_at_least": _version_at_least,
    "flag": _flag,
    "glob": _glob,
    "glob_any": _glob_any,
    "path_within": _path_within,
    "days_since": _days_since,
    "lower": _lower,
    "upper": _upper,
    "split": _split,
    "join": _join,
    "trim": _trim,
    "regex_find": _regex_find,
    "keys": _keys,
    "get": _get,
}
FUNCTIONS: dict[str, Callable[..., Any]] = {
    name: _within_budget(function) for name, function in _HELPERS.items()
}


# --- compile and evaluate ----------------------------------------------------------------------


@dataclass(frozen=True)
class Expression:
    """A compiled CEL expression and what static analysis found in it."""

    source: str
    cel_source: str  # what is compiled: `source` with each fact as a top-level variable
    facts: frozenset[str]  # dotted fact names it reads, e.g. {"host.sysctl"}
    variables: frozenset[str]  # profile variables it reads, e.g. {"allowed_services"}
    reads: tuple[tuple[str, tuple[str | int, ...]], ...]  # (member chain, its path): `observed`
    # Per fact, the paths into it that the expression reads; () = the whole fact.
    fact_paths: tuple[tuple[str, tuple[str, ...]], ...] = ()
    subject_paths: tuple[tuple[str, ...], ...] = ()  # the paths into `subject` it reads
    # The variables `cel_source` reads facts through: (fact, keys), see `fact_alias`.
    aliases: tuple[tuple[str, tuple[str, ...]], ...] = ()
    uses: frozenset[str] = frozenset()  # which of VARIABLES other than facts it may read

    @cached_property
    def program(self) -> Any:
        """The cel.Program (not picklable, so not a field: a cached profile compiles only the
        expressions a run evaluates)."""
        return _program(self.cel_source)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "program"}


@cache
def _program(cel_source: str) -> Any:
    return cel.compile(cel_source)


def fact_alias(name: str, keys: Sequence[str] = ()) -> str:
    """The top-level CEL variable that holds fact `name`, or the value `keys` lead to in it:
    ("host.sysctl") -> facts__host__sysctl, ("host.packages", ["packages"]) ->
    facts__host__packages__packages. A key that is not plain letters and digits joined by
    single underscores is written as `_` and its UTF-8 bytes in hex, so no two paths meet."""
    alias = "facts__" + name.replace(".", "__")
    for key in keys:
        alias += "__" + (key if _PLAIN_KEY.fullmatch(key) else "_" + key.encode().hex())
    return alias


Paths = tuple[tuple[str, ...], ...]
FactPaths = tuple[tuple[str, tuple[str, ...]], ...]


def _rewrite(source: str) -> tuple[str, FactPaths, Paths, FactPaths]:
    """`source` with every fact reference outside string literals, and the keys that follow
    it, replaced by their alias; the paths into each fact it reads, e.g. ("host.sysctl",
    ("kernel.x",)); the paths into `subject` it reads; and the aliases, as (fact, keys). A path
    is the keys of the member chain after the reference, up to the first list index (lists
    are never cut); () means the whole value."""
    facts: dict[tuple[str, tuple[str, ...]], None] = {}
    subject: dict[tuple[str, ...], None] = {}
    aliases: dict[tuple[str, tuple[str, ...]], None] = {}
    rewritten: list[str] = []
    position = 0
    for match in _STRING_OR_REFERENCE.finditer(source):
        if match.start() < position:  # a string key of a chain already taken into an alias
            continue
        rewritten.append(source[position : match.start()])
        position = match.end()
        if match.group("string") is not None:
            rewritten.append(match.group(0))
            continue
        tail = match.group("tail")
        steps = list(_SEGMENT.finditer(tail))
        keys: list[str] = []
        for step in steps:
            if step.group(4) is not None:  # a list index
                break
            keys.append(next((g for g in step.groups()[:3] if g is not None), ""))
        path = list(keys)
        if len(keys) == len(steps):  # get(facts.host.sysctl, 'kernel.x', d) reads one key too
            key = _GET_KEY.match(source, match.end() + len(tail))
            if key is not None and _GET_CALL.search(source, 0, match.start()):
                path.append(key.group(1) if key.group(1) is not None else key.group(2))
        if match.group("subject") is not None:
            subject[tuple(path)] = None
            rewritten.append(match.group(0))
            continue
        name = f"{match.group(2)}.{match.group(3)}"
        facts[(name, tuple(path))] = None
        taken = len(keys)
        if taken and taken == len(steps) and _HAS_CALL.search(source, 0, match.start()):
            taken -= 1
        aliases[(name, tuple(keys[:taken]))] = None
        rewritten.append(fact_alias(name, keys[:taken]))
        if taken:
            position = match.end() + steps[taken - 1].end()
    rewritten.append(source[position:])
    return "".join(rewritten), tuple(facts), tuple(subject), tuple(aliases)


# The keys to keep, each with what to keep under it; None: all. Converting a fact into CEL
# costs per value, and a check that reads one sysctl should not pay for the other thousand.
_Plan = dict[str, "_Plan"] | None


def _plan(paths: Iterable[tuple[str, ...]]) -> _Plan:
    keys: dict[str, list[tuple[str, ...]]] = {}
    for path in paths:
        if not path:
            return None
        keys.setdefault(path[0], []).append(path[1:])
    return {key: _plan(rest) for key, rest in keys.items()}


def _cut(data: Any, plan: _Plan) -> Any:
    if plan is None or not isinstance(data, dict):
        return data
    return {key: _cut(data[key], inner) for key, inner in plan.items() if key in data}


def compile_expression(source: str) -> Expression:
    """Compile CEL once, at load time; raise ExpressionError for syntax errors and for names
    that no evaluation could resolve (unknown variables or functions)."""
    aliased, fact_paths, subject_paths, aliases = _rewrite(source)
    facts = frozenset(name for name, _ in fact_paths)
    try:
        program = _program(aliased)
    except ValueError as exc:
        raise ExpressionError(_first_line(str(exc))) from exc
    bound = set(_COMPREHENSION_VAR.findall(source))
    names = set(program.variables()) - {fact_alias(fact, keys) for fact, keys in aliases}
    if "facts" in names - bound:
        raise ExpressionError("name facts in full: facts.<kind>.<name>, e.g. facts.host.sysctl")
    unknown_vars = names - VARIABLES - bound
    if unknown_vars:
        raise ExpressionError(
            f"unknown variable {sorted(unknown_vars)[0]!r} (use subject, facts, vars, target)"
        )
    for name in program.functions():
        if name[0] in "_@!" or name in _BUILTINS or name in FUNCTIONS:
            continue
        raise ExpressionError(f"unknown function {name!r}")
    _check_regexes(source)
    variables = frozenset(_VAR_REF.findall(source))
    chains = dict.fromkeys(match.group(0) for match in _CHAIN.finditer(source))
    reads = tuple((chain, _path(chain)) for chain in chains)
    return Expression(
        source=source,
        cel_source=aliased,
        facts=facts,
        variables=variables,
        reads=reads,
        fact_paths=fact_paths,
        subject_paths=subject_paths,
        aliases=aliases,
        uses=frozenset(names & VARIABLES),  # also when only a comprehension variable is so named
    )


# The calls whose pattern argument is checked at load time, and the tokens of their arguments.
_REGEX_CALL = re.compile(r"(\.)?\b(matches|regex_find)\(")
_ARGUMENT_TOKEN = re.compile(
    rf"(?P<string>(?:[rR][bB]?|[bB][rR]?)?(?:{_STRING_LITERAL}))|(?P<open>[(\[{{])"
    r"|(?P<close>[)\]}])|(?P<comma>,)|[^'\"()\[\]{},]+"
)


def _check_regexes(source: str) -> None:
    """ExpressionError for a string literal given as the pattern of `matches` or `regex_find`
    that is not a valid regex, so a typo fails when the profile loads, not on every subject."""
    for call in _REGEX_CALL.finditer(source):
        arguments = _arguments(source, call.end())
        method = call.group(1) is not None and call.group(2) == "matches"
        pattern = arguments[0 if method else 1] if len(arguments) > (0 if method else 1) else ""
        if not re.fullmatch(rf"(?:[rR])?(?:{_STRING_LITERAL})", pattern):
            continue  # a variable or an expression: checked when it is evaluated
        try:
            if call.group(2) == "regex_find":
                _regex(cel.compile(pattern).execute())
            else:  # the CEL core's own engine (Rust `regex`, linear time too) checks it
                cel.compile(f"''.matches({pattern})").execute()
        except (ValueError, RuntimeError) as exc:
            detail = re.search(r"^error: (.*)$", str(exc), re.MULTILINE)  # the Rust engine's
            reason = f"invalid regex {pattern}: {detail.group(1)}" if detail else str(exc)
            reason = _first_line(reason).split(". Check")[0]
            raise ExpressionError(f"{call.group(2)}(): {reason}") from exc


def _arguments(source: str, start: int) -> list[str]:
    """The top-level arguments of the call whose `(` ends at `start`, stripped."""
    arguments, current, depth = [], start, 0
    for token in _ARGUMENT_TOKEN.finditer(source, start):
        if token.group("open"):
            depth += 1
        elif token.group("close"):
            if depth == 0:
                arguments.append(source[current : token.start()].strip())
                return arguments
            depth -= 1
        elif token.group("comma") and depth == 0:
            arguments.append(source[current : token.start()].strip())
            current = token.end()
    return arguments


class Scope:
    """The variables of one group of checks on one target, converted to CEL once; each subject
    then swaps only `subject` (`enter`). `variables` may hold "facts" as nested dicts
    ({"host": {"sysctl": {...}}}): the CEL side gets one top-level variable per fact alias
    the expressions read (`fact_alias`). Given the group's `expressions`, only the parts of
    the facts and of each subject that they read are converted, and all their aliases go into
    the context at once: the CEL library rebuilds its whole environment, copying every
    variable, after each variable it is given. An expression not given is prepared when first
    evaluated, with whole facts and subjects.

    `shared` names what the expressions read of `variables` (the engine's key: the hashes of
    the facts, the profile variables, the target when read): scopes made for the same
    expressions with an equal key share one CEL context, converted once per thread. Hosts
    built from one image give the same packages, mounts and file modes, and converting them
    is most of the cost of judging a host. A shared scope must `enter` each subject."""

    __slots__ = (
        "_context", "_variables", "_values", "_observed", "_subject_plan", "_fact_plans",
        "_ready", "_defined", "_absent",
    )  # fmt: skip

    def __init__(
        self,
        variables: Mapping[str, Any],
        expressions: Iterable[Expression] | None = None,
        *,
        shared: Hashable | None = None,
    ) -> None:
        known = () if expressions is None else tuple(expressions)
        self._fact_plans: dict[str, _Plan] | None = None
        self._subject_plan: _Plan = None
        if expressions is not None:
            fact_paths: dict[str, list[tuple[str, ...]]] = {}
            for expression in known:
                for fact, path in expression.fact_paths:
                    fact_paths.setdefault(fact, []).append(path)
            self._fact_plans = {fact: _plan(paths) for fact, paths in fact_paths.items()}
            self._subject_plan = _plan(p for e in known for p in e.subject_paths)
        self._variables = dict(variables)  # whole: `observe` reads here, in Python
        self._defined: set[str] = set()  # the aliases in the context
        self._absent: dict[str, str] = {}  # alias -> the key its path misses
        self._ready = {expression.cel_source for expression in known}
        if any("now" in expression.uses for expression in known):
            shared = None  # `now` is when the scope is made
        name = None if shared is None else (shared, tuple(e.cel_source for e in known))
        reused = None if name is None else _shared_contexts().pop(name, None)
        if reused is not None:
            self._context, defined, absent = reused
            self._defined.update(defined)
            self._absent.update(absent)
        else:
            converted = {key: value for key, value in variables.items() if key != "facts"}
            for fact, keys in dict.fromkeys(alias for e in known for alias in e.aliases):
                alias = fact_alias(fact, keys)
                value = self._alias_value(alias, fact, keys)
                if value is not _ABSENT:
                    converted[alias] = value
            self._context = cel.Context(variables={"now": _now(), **converted}, functions=FUNCTIONS)
        if name is not None:  # (re)inserted last: the least recently used goes first
            cache = _shared_contexts()
            cache[name] = (self._context, frozenset(self._defined), dict(self._absent))
            while len(cache) > SHARED_CONTEXTS:
                del cache[next(iter(cache))]
        # Per subject, what is already known: checks of a group often share a `where` and
        # read the same member chains, so each is computed once per subject.
        self._values: dict[str, Any] = {}
        self._observed: dict[str, Any] = {}

    def enter(self, subject: Any) -> None:
        """Judge `subject` from now on: only it is converted."""
        self._variables["subject"] = subject
        self._values.clear()
        self._observed.clear()
        self._context.add_variable("subject", _cut(subject, self._subject_plan))

    def _alias_value(self, alias: str, fact: str, keys: tuple[str, ...]) -> Any:
        """What `alias` of (fact, keys) holds, cut to what is read; _ABSENT when the fact is
        not here or the keys lead nowhere, which makes reading it an error (`_describe`)."""
        kind, _, name = fact.partition(".")
        data = self._variables.get("facts", {}).get(kind, {}).get(name, _ABSENT)
        if data is _ABSENT:  # not collected: the engine never judges with it
            return _ABSENT
        plan = None if self._fact_plans is None else self._fact_plans.get(fact)
        for key in keys:  # as `_cut` would: a key outside the plan is not converted
            outside = plan is not None and key not in plan
            if outside or not isinstance(data, dict) or key not in data:
                self._absent[alias] = key
                return _ABSENT
            data = data[key]
            plan = None if plan is None else plan[key]
        self._defined.add(alias)
        return _cut(data, plan)

    def _prepare(self, expression: Expression) -> None:
        """Define the aliases of an expression the scope was not made for."""
        for fact, keys in expression.aliases:
            alias = fact_alias(fact, keys)
            if alias not in self._defined and alias not in self._absent:
                value = self._alias_value(alias, fact, keys)
                if value is not _ABSENT:
                    self._context.add_variable(alias, value)
        self._ready.add(expression.cel_source)

    def evaluate(self, expression: Expression) -> Any:
        """The value of `expression` here; EvaluationError when it cannot be computed."""
        key = expression.cel_source
        if key in self._values:
            return self._values[key]
        if key not in self._ready:
            self._prepare(expression)
        try:
            value = self._values[key] = _execute(expression.program, self._context)
        except Exception as exc:  # the CEL core raises Key/Index/Type/Runtime/ValueError
            raise EvaluationError(self._describe(exc)) from exc
        return value

    def _describe(self, exc: Exception) -> str:
        """What went wrong, an undefined alias told as the key its path misses."""
        undefined = _UNDEFINED.search(str(exc))
        if undefined is not None and undefined.group(1) in self._absent:
            return f"no such key: {self._absent[undefined.group(1)]!r}"
        return _describe(exc)

    def observe(self, expression: Expression) -> dict[str, Any]:
        """The values of the member chains `expression` reads; absent ones are left out."""
        observed: dict[str, Any] = {}
        known = self._observed
        for chain, path in expression.reads:
            if chain not in known:
                # Read in Python, not CEL: converting the data into CEL again costs far more.
                try:
                    known[chain] = shorten(_walk(self._variables, path))
                except (KeyError, IndexError):  # an absent key is simply not observed
                    known[chain] = _ABSENT
            if known[chain] is not _ABSENT:
                observed[chain] = known[chain]
        return observed

    def observe_named(self, named: Sequence[tuple[str, Expression]]) -> dict[str, Any]:
        """The values of a check's own `observe` expressions; failing ones say why."""
        observed: dict[str, Any] = {}
        for name, expression in named:
            if expression.cel_source not in self._ready:
                self._prepare(expression)
            try:
                observed[name] = shorten(_in_order(_execute(expression.program, self._context)))
            except Exception as exc:  # shown as the observation's value
                observed[name] = f"<not available: {self._describe(exc)}>"
        return observed


def _in_order(value: Any) -> Any:
    """`value` (as CEL gave it) in one order: map keys sorted, lists sorted. CEL iterates a
    map in its hash order, which changes from one process to the next, so a map or a list
    built from one comes out differently each run; an observation (and the message made from
    it) must not change between two runs on the same evidence."""
    if isinstance(value, dict):
        return {key: _in_order(value[key]) for key in sorted(value, key=str)}
    if isinstance(value, list):
        items = [_in_order(item) for item in value]
        if all(isinstance(item, str | int | float) for item in items):
            return sorted(items, key=lambda item: (isinstance(item, str), item))
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True, default=str))
    return value


_ABSENT = object()  # an observed chain that leads nowhere
OBSERVED_LIMIT = 2000  # about this many characters of JSON per observed value


def shorten(value: Any) -> Any:
    """`value`, or a short description of it when it is too large to show as an observation."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list) and not _fits(value, OBSERVED_LIMIT):
        kind = "map" if isinstance(value, dict) else "list"
        return f"<{kind} of {len(value)} items>"
    if isinstance(value, str) and len(value) > OBSERVED_LIMIT:
        return value[:OBSERVED_LIMIT] + "…"
    return value


def _fits(value: Any, budget: int) -> bool:
    """Whether `value` as JSON takes about `budget` characters or fewer. Counted, not encoded:
    most observed values are small and encoding each one cost more than judging it."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            budget -= len(item) + 4
        elif isinstance(item, dict):
            budget -= 2 + 4 * len(item)
            if budget < 0:  # a large map: no need to measure its keys
                return False
            budget -= sum(len(str(key)) for key in item)
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            budget -= 2 + 2 * len(item)
            if budget < 0:
                return False
            pending.extend(item)
        else:
            budget -= 8
        if budget < 0:
            return False
    return True


_SEGMENT = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\['([^']*)'\]|\[\"([^\"]*)\"\]|\[(\d+)\]")


def _path(chain: str) -> tuple[str | int, ...]:
    """`subject.a['b'][0]` -> ("subject", "a", "b", 0)."""
    root = chain.split(".")[0].split("[")[0]
    return (root, *_steps(chain[len(root) :]))


def _steps(tail: str) -> list[str | int]:
    """`.a['b'][0]` -> ["a", "b", 0]."""
    steps: list[str | int] = []
    for match in _SEGMENT.finditer(tail):
        name, single, double, index = match.groups()
        steps.append(int(index) if index is not None else (name or single or double or ""))
    return steps


def _walk(data: Any, path: Sequence[str | int]) -> Any:
    for key in path:
        if isinstance(data, dict):  # noqa: SIM114 - two branches let mypy narrow each index type
            data = data[key]
        elif isinstance(data, list) and isinstance(key, int):
            data = data[key]
        else:
            raise KeyError(key)
    return data


def _now() -> datetime:
    return datetime.now(UTC)


SHARED_CONTEXTS = 8  # per thread: the for_each groups of a profile's target kind, and more
_threads = threading.local()


def _shared_contexts() -> dict[Hashable, tuple[Any, frozenset[str], dict[str, str]]]:
    """This thread's shared CEL contexts, least recently used first (a CEL context is
    changed by every `enter`, so no two threads share one)."""
    try:
        cache: dict[Hashable, tuple[Any, frozenset[str], dict[str, str]]] = _threads.contexts
    except AttributeError:
        cache = _threads.contexts = {}
    return cache


def _first_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    for line in lines:
        if "ERROR:" in line:
            detail = line.split("ERROR:", 1)[1].strip()
            found = re.match(r"<input>:(\d+):(\d+): (.*)", detail)
            if found:
                detail = f"column {found.group(2)}: {found.group(3)}"
            return detail.split(" expecting {")[0]
    return lines[0] if lines else text


def _describe(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"no such key: {exc.args[0]!r}"
    if isinstance(exc, IndexError):
        return f"index out of range ({exc})"
    text = str(exc)
    if f"{BudgetExceeded.__name__}: " in text:  # raised by a helper, wrapped by the CEL core
        return text.split(f"{BudgetExceeded.__name__}: ", 1)[1].split(". Check")[0]
    if "No such overload" in text:
        return "wrong value type for this operation"
    return _first_line(text).split(". Check")[0]
