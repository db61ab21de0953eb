"""Compiling CEL once, at load time: the `Expression` and what static analysis found in it."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import cache, cached_property
from typing import Any

from auditor.expr.aliases import STRING_LITERAL, fact_alias, rewrite
from auditor.expr.binding import cel
from auditor.expr.functions import FUNCTIONS, regex
from auditor.expr.observe import Reads, find_reads

VARIABLES = frozenset({"subject", "facts", "vars", "target", "now"})

_VAR_REF = re.compile(r"\bvars\.([A-Za-z_][A-Za-z0-9_]*)")
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


@dataclass(frozen=True)
class Expression:
    """A compiled CEL expression and what static analysis found in it."""

    source: str
    cel_source: str  # what is compiled: `source` with each fact as a top-level variable
    facts: frozenset[str]  # dotted fact names it reads, e.g. {"host.sysctl"}
    variables: frozenset[str]  # profile variables it reads, e.g. {"allowed_services"}
    reads: Reads  # what it reads, recorded as `observed` (see observe.py)
    # Per fact, the paths into it that the expression reads; () = the whole fact.
    fact_paths: tuple[tuple[str, tuple[str, ...]], ...] = ()
    subject_paths: tuple[tuple[str, ...], ...] = ()  # the paths into `subject` it reads
    # The variables `cel_source` reads facts through: (fact, keys), see `fact_alias`.
    aliases: tuple[tuple[str, tuple[str, ...]], ...] = ()
    uses: frozenset[str] = frozenset()  # which of VARIABLES other than facts it may read
    # per predicate of `reads`, its filter and map forms compiled (see observe.Predicate)
    witnesses: tuple[tuple[Expression, Expression], ...] = ()

    @cached_property
    def program(self) -> Any:
        """The cel.Program (not picklable, so not a field: a cached profile compiles only the
        expressions a run evaluates)."""
        return compiled_program(self.cel_source)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "program"}


@cache
def compiled_program(cel_source: str) -> Any:
    """A cel.Program for `cel_source`, compiled once per process (programs hold no data)."""
    return cel.compile(cel_source)


def compile_expression(source: str, *, observed: bool = True) -> Expression:
    """Compile CEL once, at load time; raise ExpressionError for syntax errors and for names
    that no evaluation could resolve (unknown variables or functions). `observed`: find what
    it reads, to record (off for the witness expressions that find offending items)."""
    rewritten = rewrite(source)
    facts = frozenset(name for name, _ in rewritten.fact_paths)
    try:
        program = compiled_program(rewritten.source)
    except ValueError as exc:
        raise ExpressionError(first_line(str(exc))) from exc
    bound = set(_COMPREHENSION_VAR.findall(source))
    aliases = {fact_alias(fact, keys) for fact, keys in rewritten.aliases}
    names = set(program.variables()) - aliases
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
    reads, witnesses = _reads(source) if observed else (Reads(), ())
    return Expression(
        source=source,
        cel_source=rewritten.source,
        facts=facts,
        variables=frozenset(_VAR_REF.findall(source)),
        reads=reads,
        witnesses=witnesses,
        fact_paths=rewritten.fact_paths,
        subject_paths=rewritten.subject_paths,
        aliases=rewritten.aliases,
        uses=frozenset(names & VARIABLES),  # also when only a comprehension variable is so named
    )


def _reads(source: str) -> tuple[Reads, tuple[tuple[Expression, Expression], ...]]:
    """What `source` reads, and per predicate the expression that finds its offending items.
    A predicate inside another comprehension's body may name that comprehension's variable:
    its witness cannot stand alone, and it is not tracked."""
    found = find_reads(source)
    predicates, witnesses = [], []
    for predicate in found.predicates:
        try:
            witness = compile_expression(predicate.witness, observed=False)
            marks = compile_expression(predicate.marks, observed=False)
            witnesses.append((witness, marks))
        except ExpressionError:
            continue
        predicates.append(predicate)
    return replace(found, predicates=tuple(predicates)), tuple(witnesses)


# The calls whose pattern argument is checked at load time, and the tokens of their arguments.
_REGEX_CALL = re.compile(r"(\.)?\b(matches|regex_find)\(")
_ARGUMENT_TOKEN = re.compile(
    rf"(?P<string>(?:[rR][bB]?|[bB][rR]?)?(?:{STRING_LITERAL}))|(?P<open>[(\[{{])"
    r"|(?P<close>[)\]}])|(?P<comma>,)|[^'\"()\[\]{},]+"
)


def _check_regexes(source: str) -> None:
    """ExpressionError for a string literal given as the pattern of `matches` or `regex_find`
    that is not a valid regex, so a typo fails when the profile loads, not on every subject."""
    for call in _REGEX_CALL.finditer(source):
        arguments = _arguments(source, call.end())
        method = call.group(1) is not None and call.group(2) == "matches"
        pattern = arguments[0 if method else 1] if len(arguments) > (0 if method else 1) else ""
        if not re.fullmatch(rf"(?:[rR])?(?:{STRING_LITERAL})", pattern):
            continue  # a variable or an expression: checked when it is evaluated
        try:
            if call.group(2) == "regex_find":
                regex(cel.compile(pattern).execute())
            else:  # the CEL core's own engine (Rust `regex`, linear time too) checks it
                cel.compile(f"''.matches({pattern})").execute()
        except (ValueError, RuntimeError) as exc:
            detail = re.search(r"^error: (.*)$", str(exc), re.MULTILINE)  # the Rust engine's
            reason = f"invalid regex {pattern}: {detail.group(1)}" if detail else str(exc)
            reason = first_line(reason).split(". Check")[0]
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


def first_line(text: str) -> str:
    """The line of a CEL error that says what is wrong, with its column."""
    lines = [line for line in text.splitlines() if line.strip()]
    for line in lines:
        if "ERROR:" in line:
            detail = line.split("ERROR:", 1)[1].strip()
            found = re.match(r"<input>:(\d+):(\d+): (.*)", detail)
            if found:
                detail = f"column {found.group(2)}: {found.group(3)}"
            return detail.split(" expecting {")[0]
    return lines[0] if lines else text
