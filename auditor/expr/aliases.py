"""The fact-alias rewriter: each `facts.<kind>.<name>` reference, with the keys that follow
it, becomes a top-level CEL variable of its own (`fact_alias`).

Selecting a member in the CEL library copies the selected value (`facts.host.packages.packages`
copies the package list, on every iteration of a comprehension that reads it: 0.4 ms for 800
packages), while reading a top-level variable does not. The rewrite also finds what an
expression reads: the paths into each fact and into `subject`, so a scope converts only those.
Rewritten and plain CEL give the same verdicts (tests/unit/test_expr_aliases.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# Fact references in an expression: facts.<kind>.<name>, the dotted fact name.
FACT_REF = re.compile(r"(?<![.\w])facts\.([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)\b")
# A CEL string literal: quoted or triple-quoted (a raw or bytes prefix is matched below).
STRING_LITERAL = "|".join(
    (
        r"'''(?:\\.|[^\\])*?'''",
        r'"""(?:\\.|[^\\])*?"""',
        r"'(?:\\.|[^'\\\n])*'",
        r'"(?:\\.|[^"\\\n])*"',
    )
)
# One step of a member chain (.a, ['b'], [0]), a method call (.exists(...)) not included.
STEP = r"\.[A-Za-z_][A-Za-z0-9_]*(?![A-Za-z0-9_]*\s*\()|\[(?:'[^']*'|\"[^\"]*\"|\d+)\]"
_TAIL = rf"(?:{STEP})*"  # the member chain that follows a reference
# A string literal, or a reference to a fact or to `subject` with the chain after it: the
# references are rewritten and analysed outside string literals only.
_STRING_OR_REFERENCE = re.compile(
    rf"(?P<string>(?:[rR][bB]?|[bB][rR]?)?(?:{STRING_LITERAL}))"
    rf"|(?:{FACT_REF.pattern}|(?P<subject>(?<![.\w])subject\b))(?=(?P<tail>{_TAIL}))"
)
# get(<fact chain>, 'key', default): the call before a chain and the literal key after it.
_GET_CALL = re.compile(r"\bget\(\s*\Z")
# has(<chain>): the macro needs the chain's last member selected, not part of a variable.
_HAS_CALL = re.compile(r"\bhas\(\s*\Z")
# A key that can stand in a variable name as it is; any other is written in hex.
_PLAIN_KEY = re.compile(r"[A-Za-z0-9]+(?:_[A-Za-z0-9]+)*")
_GET_KEY = re.compile(r"\s*,\s*(?:'([^'\\]*)'|\"([^\"\\]*)\")")
# One step of a member chain, its parts: name, 'key', "key", index.
SEGMENT = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\['([^']*)'\]|\[\"([^\"]*)\"\]|\[(\d+)\]")

Paths = tuple[tuple[str, ...], ...]
FactPaths = tuple[tuple[str, tuple[str, ...]], ...]


def fact_alias(name: str, keys: Sequence[str] = ()) -> str:
    """The top-level CEL variable that holds fact `name`, or the value `keys` lead to in it:
    ("host.sysctl") -> facts__host__sysctl, ("host.packages", ["packages"]) ->
    facts__host__packages__packages. A key that is not plain letters and digits joined by
    single underscores is written as `_` and its UTF-8 bytes in hex, so no two paths meet."""
    alias = "facts__" + name.replace(".", "__")
    for key in keys:
        alias += "__" + (key if _PLAIN_KEY.fullmatch(key) else "_" + key.encode().hex())
    return alias


@dataclass(frozen=True)
class Rewritten:
    """An expression's source rewritten onto fact aliases, and what it reads.

    A path is the keys of the member chain after a reference, up to the first list index
    (lists are never cut); () means the whole value."""

    source: str  # with every fact reference outside string literals replaced by its alias
    fact_paths: FactPaths  # per fact, the paths into it: ("host.sysctl", ("kernel.x",))
    subject_paths: Paths  # the paths into `subject`
    aliases: FactPaths  # the aliases `source` reads, as (fact, keys)


def rewrite(source: str) -> Rewritten:
    """`source` with its fact references rewritten onto aliases (see the module docstring)."""
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
        steps = list(SEGMENT.finditer(tail))
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
    return Rewritten("".join(rewritten), tuple(facts), tuple(subject), tuple(aliases))
