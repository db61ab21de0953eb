"""The fact-alias rewriter (auditor/expr/aliases.py): rewritten and plain CEL give the same
verdicts, on every check fixture and on generated expressions."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.collectors import fact_specs
from auditor.expr import EvaluationError, Expression, Scope, compile_expression, fact_alias
from auditor.expr.aliases import rewrite
from auditor.expr.binding import cel
from auditor.expr.functions import FUNCTIONS
from auditor.expr.scope import in_order
from auditor.profiles import available_profiles, load_profile

FIXTURES = Path(__file__).parents[1] / "fixtures" / "checks"
PROFILES = [load_profile(str(d)) for d in available_profiles()]
CHECKS = {c.id: (p, c) for p in PROFILES for c in p.checks}
ERROR = "error"


def _nested(facts: dict[str, Any]) -> dict[str, dict[str, Any]]:
    nested: dict[str, dict[str, Any]] = {}
    for name, data in facts.items():
        kind, _, short = name.partition(".")
        nested.setdefault(kind, {})[short] = data
    return nested


def _plain(expression: Expression, variables: dict[str, Any]) -> Any:
    """The verdict of the source as written, without aliases, on whole data."""
    context = cel.Context(variables=variables, functions=FUNCTIONS)
    try:
        return cel.compile(expression.source).execute(context)
    except Exception:  # any CEL failure: the rewritten side must fail too
        return ERROR


def _rewritten(scope: Scope, expression: Expression) -> Any:
    try:
        return scope.evaluate(expression)
    except EvaluationError:
        return ERROR


def _cases() -> list[Path]:
    return sorted(p for p in FIXTURES.glob("*/*.json") if p.parent.name in CHECKS)


@pytest.mark.parametrize("path", _cases(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_rewritten_and_plain_cel_agree_on_every_check_fixture(path: Path) -> None:
    profile, check = CHECKS[path.parent.name]
    data = json.loads(path.read_text())
    variables = {**profile.variables, **data.get("vars", {})}
    base = {
        "facts": _nested(data["facts"]),
        "vars": variables,
        "target": {"name": "fixture", "url": "fixture://", "kind": str(check.check.target)},
    }
    subjects: list[Any] = [None]
    if check.check.for_each:
        spec = fact_specs(check.check.target)[check.check.for_each]
        subjects = list(spec.subjects(data["facts"][check.check.for_each]))
    scope = Scope(base, check.expressions)
    compared = 0
    for subject in subjects:
        scope.enter(subject)
        plain = {**base, "subject": subject, "now": datetime.now(UTC)}
        for expression in check.expressions:
            rewritten, written = _rewritten(scope, expression), _plain(expression, plain)
            # a map iterates in hash order, which differs between two CEL contexts
            assert in_order(rewritten) == in_order(written), expression.source
            compared += 1
    assert compared


# --- generated expressions ---------------------------------------------------------------------

_KEYS = st.sampled_from(["a", "b_c", "kernel.x", "a__b", "_e", "x-y", "c d", "ü"])
_SCALARS = st.one_of(st.integers(-3, 3), st.sampled_from(["0", "1", "yes", "facts.host.a"]))
_VALUES = st.recursive(
    _SCALARS, lambda inner: st.dictionaries(_KEYS, inner, max_size=4), max_leaves=10
)
_FACTS = st.dictionaries(st.sampled_from(["sysctl", "os", "mounts"]), _VALUES, min_size=1)


def _key(key: str) -> str:
    return "." + key if key.isascii() and key.isidentifier() else f"['{key}']"


@st.composite
def _expressions(draw: st.DrawFn) -> str:
    """A boolean CEL expression over facts.host.<name> member chains, get(), has() and
    string literals that look like fact references."""
    name = draw(st.sampled_from(["sysctl", "os", "mounts"]))
    chain = "facts.host." + name + "".join(_key(k) for k in draw(st.lists(_KEYS, max_size=3)))
    form = draw(st.integers(0, 4))
    literal = draw(_SCALARS)
    value = repr(literal) if isinstance(literal, str) else str(literal)
    if form == 0:
        return f"{chain} == {value}"
    if form == 1:
        key = draw(_KEYS)
        return f"get({chain}, '{key}', 'default') == {value}"
    if form == 2 and chain.endswith(tuple(f".{k}" for k in ("a", "b_c", "a__b", "_e"))):
        return f"has({chain})"
    if form == 3:
        return f"'facts.host.{name}' != {chain}"
    return f"size({chain}) >= 0 && {chain} != {value}"


@settings(max_examples=300, deadline=None)
@given(facts=_FACTS, source=_expressions())
def test_rewritten_and_plain_cel_agree_on_generated_expressions(
    facts: dict[str, Any], source: str
) -> None:
    expression = compile_expression(source)
    variables = {"facts": {"host": facts}}
    assert _rewritten(Scope(variables, [expression]), expression) == _plain(expression, variables)
    assert _rewritten(Scope(variables), expression) == _plain(expression, variables)


@given(keys=st.lists(st.text(min_size=1, max_size=6), min_size=2, max_size=2, unique=True))
def test_no_two_paths_share_an_alias(keys: list[str]) -> None:
    first, second = keys
    assert fact_alias("host.sysctl", [first]) != fact_alias("host.sysctl", [second])
    assert fact_alias("host.sysctl", [first]).isidentifier()


def test_references_inside_string_literals_are_not_rewritten() -> None:
    written = rewrite("facts.host.os.id == 'facts.host.os.id' && r\"facts.host.x\" != ''")
    assert written.source == "facts__host__os__id == 'facts.host.os.id' && r\"facts.host.x\" != ''"
    assert written.aliases == (("host.os", ("id",)),)
