"""What an expression reads, found when it is compiled, and the values read, recorded per subject.

Three kinds of read, found in the source outside string literals:

- a member chain from `subject` or a fact (`subject.HostConfig.Privileged`,
  `facts.host.sysctl['kernel.x']`): recorded as its path and the value it leads to, or
  `<absent>`;
- `get(<chain>, 'key', default)`, how checks write documented defaults: the path with the key
  and the value, or `<absent, default D applied>`;
- a predicate over many items, `<range>.exists(x, body)` (also `exists_one`, `filter`) or
  `<range>.all(x, body)` over a chain or a profile variable: the items that satisfy the body
  (exists) or break it (all), found by evaluating `<range>.filter(x, body)` in the same CEL
  context, bounded to ITEMS_LIMIT with their count; each item cut to what the body reads of
  it and its name. Chains inside a predicate's body are covered by it, not recorded alone.

Paths are written as they are read in the report: `subject.Mounts[0].Source`,
`host.sysctl["kernel.kptr_restrict"]` (a fact by its name, without `facts.`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property
from typing import Any

from auditor.expr.aliases import STEP, STRING_LITERAL

ITEMS_LIMIT = 20  # offending items kept per predicate; their count is always given
OBSERVED_LIMIT = 2000  # about this many characters of JSON per value read whole
IDENTITY_KEYS = ("name", "Name", "Id", "target", "path")  # kept with an item: which one it is
ABSENT = "<absent>"
NOT_READ = "<not read>"

_STRING = re.compile(rf"(?:[rR][bB]?|[bB][rR]?)?(?:{STRING_LITERAL})")
_ROOT = r"(?<![.\w])(?P<root>subject|facts\.[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*|vars\.[A-Za-z_]\w*)"
_CHAIN = re.compile(rf"{_ROOT}(?P<steps>(?:{STEP})*)")
_MACRO = re.compile(r"\s*\.\s*(?P<macro>all|exists_one|exists|filter|map)\s*\(")
_GET = re.compile(r"(?<![.\w])get\s*\(")
_SEGMENT = re.compile(
    r"\.([A-Za-z_][A-Za-z0-9_]*)|\[\s*'([^']*)'\s*\]|\[\s*\"([^\"]*)\"\s*\]|\[(\d+)\]"
)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

Step = str | int


@dataclass(frozen=True)
class Chain:
    """A member chain: its root (`subject`, a fact name such as `host.sysctl`, or `vars.x`)
    and the literal steps after it."""

    root: str
    steps: tuple[Step, ...] = ()

    @cached_property
    def name(self) -> str:
        """The path as reports show it: subject.a["b.c"][0], host.sysctl["kernel.x"]."""
        text = self.root
        for step in self.steps:
            if isinstance(step, int):
                text += f"[{step}]"
            elif _IDENTIFIER.fullmatch(step):
                text += "." + step
            else:
                text += "[" + json.dumps(step) + "]"
        return text

    def extends(self, other: Chain) -> bool:
        """Whether this chain goes on from `other` (subject.a.b from subject.a)."""
        size = len(other.steps)
        longer = len(self.steps) > size
        return longer and self.root == other.root and self.steps[:size] == other.steps

    def resolve(self, variables: dict[str, Any]) -> Any:
        """The value the chain leads to in `variables` (Python data); KeyError when absent."""
        if self.root == "subject":
            data = variables.get("subject")
        elif self.root.startswith("vars."):
            data = variables.get("vars", {})[self.root[5:]]
        else:
            kind, _, name = self.root.partition(".")
            data = variables.get("facts", {}).get(kind, {})[name]
        for step in self.steps:
            if isinstance(data, dict) and isinstance(step, str):  # noqa: SIM114 - mypy narrows
                data = data[step]
            elif isinstance(data, list) and isinstance(step, int) and 0 <= step < len(data):
                data = data[step]
            else:
                raise KeyError(step)
        return data


@dataclass(frozen=True)
class Default:
    """`get(chain, 'key', default)`: `chain` here includes the key."""

    chain: Chain
    default: str  # the default as written in the expression


@dataclass(frozen=True)
class Predicate:
    """`range.exists(x, body)` or `range.all(x, body)`. The offending items are found with
    `range.map(x, condition)` over a list (booleans, cheap to bring back from CEL; the items
    are then taken from the Python data) or `range.filter(x, condition)` over a map (its
    keys), where the condition is `body` (exists) or `!(body)` (all)."""

    range: Chain
    macro: str
    witness: str  # the filter form
    marks: str  # the map form
    item_paths: tuple[tuple[str, ...], ...] | None  # what the body reads of an item; None: all
    # When the predicate is the whole expression (`!` before it: False; None: it is not), the
    # expression's value alone can tell that no item is offending: nothing to evaluate.
    whole: bool | None = None

    def none_offending(self, value: Any) -> bool:
        """Whether the expression's `value` shows that no item satisfies (exists) or breaks
        (all) the body."""
        if self.whole is None or not isinstance(value, bool):
            return False
        inner = value if self.whole else not value
        return inner is (self.macro == "all")


@dataclass(frozen=True)
class Reads:
    """Everything an expression reads, as found in its source."""

    chains: tuple[Chain, ...] = ()
    defaults: tuple[Default, ...] = ()
    predicates: tuple[Predicate, ...] = ()


def _masked(source: str) -> str:
    """`source` with the inside of every string literal blanked, same length: parentheses,
    commas and names in strings are then not seen."""
    return _STRING.sub(
        lambda m: m.group(0)[0] + "_" * (len(m.group(0)) - 2) + m.group(0)[-1], source
    )


def _arguments(masked: str, opening: int) -> tuple[list[tuple[int, int]], int] | None:
    """The spans of the top-level arguments of the call whose `(` is at `opening`, and the
    position after its `)`; None when it is not closed."""
    depth, start, spans = 0, opening + 1, []
    for position in range(opening, len(masked)):
        char = masked[position]
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0:
                spans.append((start, position))
                return spans, position + 1
        elif char == "," and depth == 1:
            spans.append((start, position))
            start = position + 1
    return None


def _chain(root: str, steps_text: str) -> Chain:
    steps: list[Step] = []
    for match in _SEGMENT.finditer(steps_text):
        name, single, double, index = match.groups()
        steps.append(int(index) if index is not None else (name or single or double or ""))
    if root.startswith("facts."):
        root = root[len("facts.") :]
    return Chain(root, tuple(steps))


def _item_paths(body: str, variable: str) -> tuple[tuple[str, ...], ...] | None:
    """The keys the body reads of its item `variable` (up to a list index); None when it uses
    the item whole (`x in list`, `glob(x, ...)`)."""
    paths: list[tuple[str, ...]] = []
    masked = _masked(body)
    for match in re.finditer(rf"(?<![.\w]){re.escape(variable)}(?![\w])", masked):
        tail = re.match(rf"(?:{STEP})*", body[match.end() :])
        keys: list[str] = []
        for step in _SEGMENT.finditer(tail.group(0) if tail else ""):
            name, single, double, index = step.groups()
            if index is not None:
                break
            keys.append(name or single or double or "")
        if not keys:
            return None
        paths.append(tuple(keys))
    return tuple(dict.fromkeys(paths))


def find_reads(source: str) -> Reads:
    """The chains, defaults and predicates `source` reads (see the module docstring)."""
    masked = _masked(source)
    covered: list[tuple[int, int]] = []
    chains: dict[Chain, None] = {}
    defaults: dict[Default, None] = {}
    predicates: dict[Predicate, None] = {}

    def inside(position: int) -> bool:
        return any(start <= position < end for start, end in covered)

    for call in _GET.finditer(masked):
        if inside(call.start()):
            continue
        found = _arguments(masked, call.end() - 1)
        if found is None or len(found[0]) != 3:
            continue
        (a0, a1), (k0, k1), (d0, d1) = found[0]
        target = _CHAIN.fullmatch(source[a0:a1].strip())
        key = re.fullmatch(r"\s*(?:'([^'\\]*)'|\"([^\"\\]*)\")\s*", source[k0:k1])
        if target is None or key is None or target.group("root").startswith("vars."):
            continue
        chain = _chain(target.group("root"), target.group("steps"))
        literal = key.group(1) if key.group(1) is not None else key.group(2)
        defaults[Default(Chain(chain.root, (*chain.steps, literal)), source[d0:d1].strip())] = None
        covered.append((a0, a1))
    for match in _CHAIN.finditer(masked):
        if inside(match.start()):
            continue
        text = source[match.start() : match.end()]
        chain = _chain(match.group("root"), _CHAIN.fullmatch(text).group("steps"))  # type: ignore[union-attr]
        macro = _MACRO.match(masked, match.end())
        if macro is not None and macro.group("macro") != "map":
            predicate = _predicate(source, masked, match.start(), macro, chain)
            if predicate is not None:
                whole = _whole(source, match.start(), predicate[1])
                predicates[replace(predicate[0], whole=whole)] = None
                covered.append((match.start(), predicate[1]))
                continue
        if not chain.root.startswith("vars."):
            chains[chain] = None
    return Reads(tuple(chains), tuple(defaults), tuple(predicates))


def _whole(source: str, start: int, end: int) -> bool | None:
    """True when source[start:end] is the whole of `source`, False when it is all but a `!`
    before it, else None."""
    before, after = source[:start].strip(), source[end:].strip()
    if after:
        return None
    return True if not before else (False if before == "!" else None)


def _predicate(
    source: str, masked: str, start: int, macro: re.Match[str], chain: Chain
) -> tuple[Predicate, int] | None:
    found = _arguments(masked, macro.end() - 1)
    if found is None or len(found[0]) != 2:
        return None
    (v0, v1), (b0, b1) = found[0]
    variable = source[v0:v1].strip()
    body = source[b0:b1].strip()
    if not _IDENTIFIER.fullmatch(variable):
        return None
    range_source = source[start : macro.start()]
    kind = macro.group("macro")
    condition = f"!({body})" if kind == "all" else body
    witness = f"{range_source}.filter({variable}, {condition})"
    marks = f"{range_source}.map({variable}, {condition})"
    return Predicate(chain, kind, witness, marks, _item_paths(body, variable)), found[1]


def bounded(value: Any) -> Any:
    """`value` as recorded: whole when it fits OBSERVED_LIMIT; a long list or map keeps its
    first items and says how many there are; never a summary in place of the value."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value if len(value) <= OBSERVED_LIMIT else value[:OBSERVED_LIMIT] + "…"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list) and not fits(value, OBSERVED_LIMIT):
        if isinstance(value, dict):
            first: Any = dict(_first_fitting(value.items()))
        else:
            first = [item for _, item in _first_fitting(enumerate(value))]
        return {"first": first, "count": len(value)}
    return value


def _first_fitting(items: Any) -> Iterator[tuple[Any, Any]]:
    budget = OBSERVED_LIMIT
    for count, (key, item) in enumerate(items):
        if count >= ITEMS_LIMIT or not fits(item, budget):
            return
        budget -= len(json.dumps(item, default=str)) + len(str(key))
        yield key, item


def cut_item(item: Any, paths: Sequence[tuple[str, ...]] | None) -> Any:
    """An offending item: what the predicate's body reads of it, and its name."""
    if paths is None or not isinstance(item, dict):
        return bounded(item)
    kept: dict[str, Any] = {}
    for key in IDENTITY_KEYS:
        if key in item and isinstance(item[key], str | int):
            kept[key] = item[key]
    for path in paths:
        source, target = item, kept
        for depth, key in enumerate(path):
            if not isinstance(source, dict) or key not in source:
                break
            if depth == len(path) - 1:
                target[key] = bounded(source[key])
            else:
                source = source[key]
                existing = target.get(key)
                target = target.setdefault(key, {}) if isinstance(existing, dict | None) else {}
    return kept


def fits(value: Any, budget: int) -> bool:
    """Whether `value` as JSON takes about `budget` characters or fewer. Counted, not encoded:
    most values are small and encoding each one cost more than judging it."""
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
