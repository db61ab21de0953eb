"""Failure messages: Jinja templates rendered only from what was read and the variables in force.

A template sees `observed` (the result's observed record: paths and the check's named
observations), `vars` (the profile variables in force), and `subject` and `facts` rebuilt from
the observed values of the paths the template itself reads (`template_reads`, found when the
profile is loaded; the evaluator records them with the assertion's). So a message can print
only values that are in the result's evidence; anything else renders as `<not read>`, which
is never mistaken for a default.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from auditor.expr import NOT_READ, Chain


class NotRead(jinja2.ChainableUndefined):
    """A value the template asks for that was not read: shown as `<not read>`, and true, so
    `x or 'a default'` still shows that it was not read."""

    def __str__(self) -> str:
        return NOT_READ

    def __bool__(self) -> bool:
        return True

    def __iter__(self) -> Iterator[Any]:
        yield NOT_READ

    def __len__(self) -> int:
        return 1


ENVIRONMENT = ImmutableSandboxedEnvironment(
    autoescape=False,  # messages are plain text; every reporter escapes for its own format
    undefined=NotRead,
)
# No globals (range, dict, lipsum, cycler, joiner, namespace): messages only show values, and
# copying the globals into every render's context was half of a render's cost.
ENVIRONMENT.globals.clear()


@cache
def template(source: str) -> jinja2.Template:
    """Compiling a template costs ~3 ms: only messages that are shown pay it, once."""
    return ENVIRONMENT.from_string(source)


def template_reads(source: str) -> tuple[Chain, ...]:
    """The paths into `subject` and the facts that a message template reads (`subject.Name`,
    `facts.host.os.id`): the longest literal chain of each use."""
    found: dict[Chain, None] = {}
    _visit(ENVIRONMENT.parse(source), found)
    return tuple(found)


def _visit(node: nodes.Node, found: dict[Chain, None]) -> None:
    chain = _chain(node)
    if chain is not None:
        found[chain] = None
        return
    for child in node.iter_child_nodes():
        _visit(child, found)


def _chain(node: nodes.Node) -> Chain | None:
    steps: list[str | int] = []
    while True:
        if isinstance(node, nodes.Getattr):
            steps.append(node.attr)
            node = node.node
        elif (
            isinstance(node, nodes.Getitem)
            and isinstance(node.arg, nodes.Const)
            and isinstance(node.arg.value, str | int)
        ):
            steps.append(node.arg.value)
            node = node.node
        else:
            break
    if not isinstance(node, nodes.Name):
        return None
    steps.reverse()
    if node.name == "subject":
        return Chain("subject", tuple(steps))
    if node.name == "facts" and len(steps) >= 2 and all(isinstance(s, str) for s in steps[:2]):
        return Chain(f"{steps[0]}.{steps[1]}", tuple(steps[2:]))
    return None


def context(
    reads: Sequence[Chain], observed: Mapping[str, Any], variables: Mapping[str, Any]
) -> dict[str, Any]:
    """What a template is rendered with: observed, vars, and subject and facts made of the
    observed values of `reads` only."""
    subject: dict[Any, Any] = {}
    facts: dict[Any, Any] = {}
    for chain in reads:
        if chain.name not in observed:
            continue
        if chain.root == "subject":
            if not chain.steps:
                subject = observed[chain.name]
                continue
            _place(subject, chain.steps, observed[chain.name])
        else:
            kind, _, name = chain.root.partition(".")
            _place(facts, (kind, name, *chain.steps), observed[chain.name])
    return {"observed": observed, "vars": variables, "subject": subject, "facts": facts}


def _place(into: Any, steps: Sequence[str | int], value: Any) -> None:
    for step in steps[:-1]:
        if not isinstance(into, dict):
            return
        into = into.setdefault(step, {})
    if isinstance(into, dict):
        into.setdefault(steps[-1], value)


def render(
    source: str,
    reads: Sequence[Chain],
    observed: Mapping[str, Any],
    variables: Mapping[str, Any],
) -> str:
    """The message, from observed values and variables only ("" when there is none)."""
    if not source:
        return ""
    return template(source).render(context(reads, observed, variables)).strip()
