"""Evaluating compiled expressions: a `Scope` holds the variables of one group of checks on
one target, converted into CEL values once, and swaps only the subject.

Converting Python data into CEL values is paid per value, so a scope converts only the parts
of the facts and of each subject that its expressions read (see aliases.py), and gives all
their aliases to the context at once: the CEL library rebuilds its whole environment, copying
every variable, after each variable it is given.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from auditor.expr.aliases import fact_alias
from auditor.expr.binding import cel
from auditor.expr.budget import execute, unwrap
from auditor.expr.compiler import EvaluationError, Expression, first_line
from auditor.expr.functions import FUNCTIONS
from auditor.expr.observe import (
    ABSENT,
    ITEMS_LIMIT,
    Chain,
    Default,
    Predicate,
    bounded,
    cut_item,
)

# The keys to keep, each with what to keep under it; None: all. Converting a fact into CEL
# costs per value, and a check that reads one sysctl should not pay for the other thousand.
_Plan = dict[str, "_Plan"] | None
_UNDEFINED = re.compile(r"Undefined variable or function: '(\w+)'")


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


class Scope:
    """The variables of one group of checks on one target, converted to CEL once; each subject
    then swaps only `subject` (`enter`). `variables` may hold "facts" as nested dicts
    ({"host": {"sysctl": {...}}}): the CEL side gets one top-level variable per fact alias
    the expressions read (`fact_alias`). Given the group's `expressions`, only the parts of
    the facts and of each subject that they read are converted. An expression not given is
    prepared when first evaluated, with whole facts and subjects."""

    __slots__ = (
        "_context", "_variables", "_values", "_observed", "_subject_plan", "_fact_plans",
        "_ready", "_defined", "_absent", "_read", "_read_items",
    )  # fmt: skip

    def __init__(
        self,
        variables: Mapping[str, Any],
        expressions: Iterable[Expression] | None = None,
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
        self._context = self._new_context(variables, known)
        # Per subject, what is already known: checks of a group often share a `where` and
        # read the same member chains, so each is computed once per subject.
        self._values: dict[str, Any] = {}
        self._observed: dict[str, Any] = {}  # chain -> its value
        self._read: dict[str, dict[str, Any]] = {}  # expression -> what it read
        self._read_items: dict[str, dict[str, Any]] = {}  # the same with offending items

    def _new_context(self, variables: Mapping[str, Any], known: Sequence[Expression]) -> Any:
        converted = {key: value for key, value in variables.items() if key != "facts"}
        for fact, keys in dict.fromkeys(alias for e in known for alias in e.aliases):
            alias = fact_alias(fact, keys)
            value = self._alias_value(alias, fact, keys)
            if value is not _ABSENT:
                converted[alias] = value
        return cel.Context(variables={"now": _now(), **converted}, functions=FUNCTIONS)

    def enter(self, subject: Any) -> None:
        """Judge `subject` from now on: only it is converted."""
        self._variables["subject"] = subject
        self._values.clear()
        self._observed.clear()
        self._read.clear()
        self._read_items.clear()
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
            value = self._values[key] = execute(expression.program, self._context)
        except Exception as exc:  # the CEL core raises Key/Index/Type/Runtime/ValueError
            raise EvaluationError(self._describe(exc)) from exc
        return value

    def _describe(self, exc: Exception) -> str:
        """What went wrong, an undefined alias told as the key its path misses."""
        undefined = _UNDEFINED.search(str(exc))
        if undefined is not None and undefined.group(1) in self._absent:
            return f"no such key: {self._absent[undefined.group(1)]!r}"
        return _describe(exc)

    def observe(self, expression: Expression, *, items: bool = False) -> dict[str, Any]:
        """What `expression` read on this subject, path -> value (see observe.py); with
        `items`, also the items that decided each predicate over many (a CEL evaluation per
        predicate: worth it on a failure). A new dict each time, computed once per subject."""
        return dict(self.reads(expression, items=items))

    def reads(self, expression: Expression, *, items: bool = False) -> Mapping[str, Any]:
        """`observe`, without the copy: the caller must not change it."""
        known = self._read_items if items else self._read
        found = known.get(expression.cel_source)
        if found is None:
            found = known[expression.cel_source] = self._read_values(expression, items)
        return found

    def _read_values(self, expression: Expression, items: bool) -> dict[str, Any]:
        observed: dict[str, Any] = {}
        reads = expression.reads
        absent: list[Chain] = []
        for chain in reads.chains:
            if any(chain.extends(shorter) for shorter in absent):
                continue  # subject.a is <absent>: so is subject.a.b, no need to say it twice
            value = observed[chain.name] = self._chain_value(chain)
            if value is ABSENT:
                absent.append(chain)
        for default in reads.defaults:
            observed[default.chain.name] = self._default_value(default)
        if items:
            value = self._values.get(expression.cel_source)
            for predicate, witness in zip(reads.predicates, expression.witnesses, strict=True):
                if predicate.none_offending(value):
                    label = "violating" if predicate.macro == "all" else "matching"
                    observed[predicate.range.name] = {label: [], "count": 0}
                else:
                    observed[predicate.range.name] = self._offending(predicate, witness)
        return observed

    def observe_chains(self, chains: Iterable[Chain], observed: dict[str, Any]) -> None:
        """Add the values of `chains` (a message's reads) to `observed`, keeping what is there."""
        for chain in chains:
            if chain.name not in observed:
                observed[chain.name] = self._chain_value(chain)

    def _chain_value(self, chain: Chain) -> Any:
        known = self._observed
        name = chain.name
        if name not in known:
            # Read in Python, not CEL: converting the data into CEL again costs far more.
            try:
                known[name] = bounded(chain.resolve(self._variables))
            except (KeyError, IndexError, TypeError):
                known[name] = ABSENT
        return known[name]

    def _default_value(self, default: Default) -> Any:
        parent = Chain(default.chain.root, default.chain.steps[:-1])
        try:
            mapping = parent.resolve(self._variables)
        except (KeyError, IndexError, TypeError):
            return ABSENT
        value = mapping.get(default.chain.steps[-1]) if isinstance(mapping, dict) else None
        return f"<absent, default {default.default} applied>" if value is None else bounded(value)

    def _offending(self, predicate: Predicate, witness: tuple[Expression, Expression]) -> Any:
        """The items of a predicate's range that satisfy its body (exists) or break it (all),
        the first ITEMS_LIMIT of them, and how many there are."""
        try:
            items = predicate.range.resolve(self._variables)
        except (KeyError, IndexError, TypeError):
            items = None
        try:
            if isinstance(items, list):
                marks = self.evaluate(witness[1])
                found = [item for item, mark in zip(items, marks, strict=False) if mark is True]
            else:
                found = self.evaluate(witness[0])
                found = in_order(found) if isinstance(found, list) else found
        except EvaluationError as exc:
            return f"<not available: {exc}>"
        if not isinstance(found, list):
            return bounded(found)
        label = "violating" if predicate.macro == "all" else "matching"
        kept = [cut_item(item, predicate.item_paths) for item in found[:ITEMS_LIMIT]]
        return {label: kept, "count": len(found)}

    def observe_named(self, named: Sequence[tuple[str, Expression]]) -> dict[str, Any]:
        """The values of a check's own `observe` expressions; failing ones say why."""
        observed: dict[str, Any] = {}
        for name, expression in named:
            if expression.cel_source not in self._ready:
                self._prepare(expression)
            try:
                observed[name] = bounded(in_order(execute(expression.program, self._context)))
            except Exception as exc:  # shown as the observation's value
                observed[name] = f"<not available: {self._describe(exc)}>"
        return observed


def in_order(value: Any) -> Any:
    """`value` (as CEL gave it) in one order: map keys sorted, lists sorted. CEL iterates a
    map in its hash order, which changes from one process to the next, so a map or a list
    built from one comes out differently each run; an observation (and the message made from
    it) must not change between two runs on the same evidence."""
    if isinstance(value, dict):
        return {key: in_order(value[key]) for key in sorted(value, key=str)}
    if isinstance(value, list):
        items = [in_order(item) for item in value]
        if all(isinstance(item, str | int | float) for item in items):
            return sorted(items, key=lambda item: (isinstance(item, str), item))
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True, default=str))
    return value


_ABSENT = object()  # an alias whose keys lead nowhere


def _now() -> datetime:
    return datetime.now(UTC)


def _describe(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"no such key: {exc.args[0]!r}"
    if isinstance(exc, IndexError):
        return f"index out of range ({exc})"
    text = str(exc)
    budget = unwrap(text)  # a helper refused to run past the budget
    if budget is not None:
        return budget
    if "No such overload" in text:
        return "wrong value type for this operation"
    return first_line(text).split(". Check")[0]
