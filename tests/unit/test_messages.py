"""Messages print only what was read: every check's message rendered on its failing fixtures,
each value it prints found in the result's observed record or in the variables in force."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
from jinja2 import nodes

from auditor import messages
from auditor.engine import evaluate
from auditor.expr import NOT_READ, Chain
from auditor.facts import new_fact
from auditor.model import Status, TargetRecord
from auditor.profiles import available_profiles, load_profile

FIXTURES = Path(__file__).parents[1] / "fixtures" / "checks"
PROFILES = [load_profile(str(d)) for d in available_profiles()]
CHECKS = {c.id: (p, c) for p in PROFILES for c in p.checks}
SEPARATORS = re.compile(r"[\s,;|:()/=\-\[\]'\"]*")


def _leaves(value: Any) -> set[str]:
    if isinstance(value, dict):
        return {str(k) for k in value} | {leaf for v in value.values() for leaf in _leaves(v)}
    if isinstance(value, list | tuple):
        return {leaf for v in value for leaf in _leaves(v)}
    return {str(value)}


def _lengths(value: Any) -> set[str]:
    if isinstance(value, dict):
        return {str(len(value))} | {n for v in value.values() for n in _lengths(v)}
    if isinstance(value, list):
        return {str(len(value))} | {n for v in value for n in _lengths(v)}
    return set()


def _constants(source: str) -> set[str]:
    return {
        node.value
        for node in messages.ENVIRONMENT.parse(source).find_all(nodes.Const)
        if isinstance(node.value, str)
    }


def _printed_from(text: str, allowed: set[str], constants: set[str]) -> bool:
    """Whether `text` is made of read values (or a part of one: `Name[1:]`), the template's
    own words and separators only."""
    if any(text in leaf for leaf in allowed if leaf):
        return True
    rest = text
    for piece in sorted(allowed | constants, key=len, reverse=True):
        if piece:
            rest = rest.replace(piece, " ")
    return SEPARATORS.fullmatch(rest) is not None


def _failing() -> list[Path]:
    return sorted(
        p for p in FIXTURES.glob("*/fail-*.json") if p.parent.name in CHECKS
        and CHECKS[p.parent.name][1].message
    )  # fmt: skip


@pytest.mark.parametrize("path", _failing(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_message_prints_only_values_read_or_variables(path: Path) -> None:
    profile, check = CHECKS[path.parent.name]
    data = json.loads(path.read_text())
    facts = tuple(new_fact(n, "fixture", v, source="fixture") for n, v in data["facts"].items())
    record = TargetRecord("fixture", "fixture://", check.check.target, "", "", facts=facts)
    variables = {**profile.variables, **data.get("vars", {})}
    only = dataclasses.replace(profile, checks=(check,))
    failed = [r for r in evaluate(only, record, variables) if r.status is Status.FAIL]
    assert failed
    printed: list[Any] = []
    capturing = messages.ENVIRONMENT.overlay(finalize=lambda v: printed.append(v) or v)
    for result in failed:
        assert NOT_READ not in result.message, (result.message, result.observed)
        printed.clear()
        context = messages.context(check.message_reads, result.observed, variables)
        rendered = capturing.from_string(check.message).render(context).strip()
        assert rendered == result.message
        allowed = _leaves(result.observed) | _leaves(variables) | _lengths(result.observed)
        for value in printed:
            if isinstance(value, dict | list):  # a read value shown whole: each of its parts
                assert _leaves(value) <= allowed, (check.id, value)
                continue
            text = str(value).strip()
            assert not text or _printed_from(text, allowed, _constants(check.message)), (
                f"{check.id} prints {text!r}, which is neither observed nor a variable",
                result.observed,
            )


def test_a_value_not_read_renders_as_not_read_never_as_a_default() -> None:
    source = "PermitRootLogin {{ facts.host.sshd_config.settings.permitrootlogin or 'no' }}"
    reads = messages.template_reads(source)
    assert reads == (Chain("host.sshd_config", ("settings", "permitrootlogin")),)
    assert messages.render(source, reads, {}, {}) == f"PermitRootLogin {NOT_READ}"
    observed = {"host.sshd_config.settings.permitrootlogin": "yes"}
    assert messages.render(source, reads, observed, {}) == "PermitRootLogin yes"
    # the subject too is only what was read of it
    assert messages.render("{{ subject.Name }} {{ subject.Id }}", (), {}, {}) == (
        f"{NOT_READ} {NOT_READ}"
    )
    assert messages.render("{{ observed.containers | join(', ') }}", (), {}, {}) == NOT_READ
