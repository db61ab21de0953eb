"""YAML loading that remembers where things are, so every input error can name its line, and
that a hostile file cannot crash, hang or flood.

Every YAML input (profiles, overlays, inventories, waivers, attestations, `--var` values,
snapshot manifests) goes through this one loader:

* nesting is refused past MAX_DEPTH levels (libyaml's own composer recurses in C and crashes
  the process near 100,000 levels; our composer is a loop over libyaml's events);
* aliases may stand for at most MAX_ALIAS_NODES nodes per document in all (billion laughs),
  and an alias inside the node it names is refused;
* a key written twice in one mapping is an error (else the second silently wins);
* dates and times stay strings (no timestamp resolver): the schemas that expect a date check
  it, and `2026-02-30` is a clear error there, not a traceback here;
* files are read as regular files only, within MAX_FILE_BYTES.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.resolver import BaseResolver, Resolver

from auditor.errors import InputError
from auditor.regularfile import UnreadableFile, read_regular_file

MAX_DEPTH = 200  # nesting levels of one document (Kubernetes objects need about 20)
MAX_ALIAS_NODES = 100_000  # nodes that the aliases of one document may stand for, in all
MAX_FILE_BYTES = 20_000_000  # a YAML input file (profiles, inventories ...: kilobytes)

_TIMESTAMP = "tag:yaml.org,2002:timestamp"


class _PlainResolver(BaseResolver):
    """YAML 1.1's implicit types (bool, int, float, null, merge) but not timestamps."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP]
        for first, resolvers in Resolver.yaml_implicit_resolvers.items()
    }


class _Constructor(SafeConstructor):
    """SafeConstructor with an explicit `!!timestamp` read as a string too."""


_Constructor.add_constructor(_TIMESTAMP, SafeConstructor.construct_yaml_str)  # type: ignore[type-var]


class YamlLimitError(yaml.MarkedYAMLError):
    """The document is deeper, or expands to more, than auditor accepts."""


def _event_parser() -> Any:
    """libyaml's event parser when PyYAML was built with it (an order of magnitude faster),
    else the pure-Python one; both give the same events."""
    try:
        from yaml._yaml import CParser

        return CParser
    except ImportError:  # pragma: no cover - PyYAML without libyaml
        from yaml.parser import Parser
        from yaml.reader import Reader
        from yaml.scanner import Scanner

        class PythonParser(Reader, Scanner, Parser):
            def __init__(self, text: str) -> None:
                Reader.__init__(self, text)
                Scanner.__init__(self)
                Parser.__init__(self)

            def dispose(self) -> None:
                pass

        return PythonParser


_Parser = _event_parser()


class _EventSource(_Parser, _PlainResolver):  # type: ignore[misc,valid-type]
    def __init__(self, text: str) -> None:
        _Parser.__init__(self, text)
        _PlainResolver.__init__(self)


@dataclass(slots=True)
class _Open:
    """A collection being composed: its node, size so far, height, and (a mapping's) keys."""

    node: yaml.CollectionNode
    anchor: str | None
    keys: dict[tuple[str, str], int] | None  # (tag, text) -> line; None for a sequence
    size: int = 1
    height: int = 1
    key: yaml.Node | None = None  # a mapping's key waiting for its value


def compose_documents(text: str) -> Iterator[yaml.Node]:
    """The root node of each document of `text` (an empty document gives an empty scalar).
    Raises yaml.YAMLError (YamlLimitError past the bounds) with the line where it happened."""
    source = _EventSource(text)
    try:
        source.get_event()  # stream start
        while not source.check_event(yaml.StreamEndEvent):
            source.get_event()  # document start
            yield _compose(source)
            source.get_event()  # document end
    finally:
        source.dispose()


def construct(node: yaml.Node) -> Any:
    """The Python value of a composed node; yaml.YAMLError for values YAML cannot construct
    (`!!int abc`, an integer of 5,000 digits, an unhashable key)."""
    try:
        return _Constructor().construct_document(node)
    except (ValueError, TypeError, OverflowError) as exc:
        raise yaml.constructor.ConstructorError(
            None, None, f"cannot read the value: {exc}", node.start_mark
        ) from exc


def _compose(source: Any) -> yaml.Node:
    """One document's node tree, built in a loop (no recursion) within the bounds."""
    anchors: dict[str, tuple[yaml.Node, int | None, int]] = {}  # node, size, height
    stack: list[_Open] = []
    budget = MAX_ALIAS_NODES
    node: yaml.Node
    while True:
        event: Any = source.get_event()
        kind = type(event)
        if kind is yaml.ScalarEvent:
            tag = event.tag
            if tag is None or tag == "!":
                tag = source.resolve(yaml.ScalarNode, event.value, event.implicit)
            marks: tuple[Any, Any] = (event.start_mark, event.end_mark)
            node = yaml.ScalarNode(tag, event.value, *marks, style=event.style)
            size = height = 1
            if event.anchor is not None:
                anchors[event.anchor] = (node, 1, 1)
        elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
            stack.append(_open(source, event, kind is yaml.MappingStartEvent))
            if len(stack) > MAX_DEPTH:
                raise _limit(f"nested deeper than {MAX_DEPTH} levels", event)
            if event.anchor is not None:
                anchors[event.anchor] = (stack[-1].node, None, 1)
            continue
        elif kind is yaml.AliasEvent:
            known = anchors.get(event.anchor or "")
            if known is None:
                raise _error(f"found undefined alias {event.anchor!r}", event)
            node, known_size, height = known
            if known_size is None:
                raise _error(f"alias {event.anchor!r} inside the node it names", event)
            size = known_size
            budget -= size
            if budget < 0:
                raise _limit(f"aliases expand to more than {MAX_ALIAS_NODES} nodes", event)
            if len(stack) + height > MAX_DEPTH:
                raise _limit(f"nested deeper than {MAX_DEPTH} levels (through an alias)", event)
        else:  # the end of a sequence or mapping
            done = stack.pop()
            node, size, height = done.node, done.size, done.height
            node.end_mark = event.end_mark
            if done.anchor is not None:
                anchors[done.anchor] = (node, size, height)
        if not stack:
            return node
        parent = stack[-1]
        parent.size += size if size <= MAX_ALIAS_NODES else MAX_ALIAS_NODES + 1
        if height >= parent.height:
            parent.height = height + 1
        if parent.keys is None:
            parent.node.value.append(node)
        elif parent.key is None:
            parent.key = node
            if type(node) is yaml.ScalarNode:
                _new_key(parent.keys, node)
        else:
            parent.node.value.append((parent.key, node))
            parent.key = None


def _open(source: Any, event: Any, is_mapping: bool) -> _Open:
    tag = event.tag
    kind = yaml.MappingNode if is_mapping else yaml.SequenceNode
    if tag is None or tag == "!":
        tag = source.resolve(kind, None, event.implicit)
    node = kind(tag, [], event.start_mark, None, flow_style=event.flow_style)
    return _Open(node, event.anchor, {} if is_mapping else None)


def _new_key(keys: dict[tuple[str, str], int], node: yaml.ScalarNode) -> None:
    """Note a mapping's key; a key written twice is an error naming both lines."""
    seen = keys.get((node.tag, node.value))
    if seen is not None:
        problem = f"duplicate key {node.value!r} (first on line {seen})"
        raise yaml.composer.ComposerError(None, None, problem, node.start_mark)
    keys[(node.tag, node.value)] = node.start_mark.line + 1


def _error(problem: str, event: Any) -> yaml.MarkedYAMLError:
    return yaml.composer.ComposerError(None, None, problem, event.start_mark)


def _limit(problem: str, event: Any) -> YamlLimitError:
    return YamlLimitError(None, None, problem, event.start_mark)


def parse_value(text: str) -> Any:
    """One YAML value from a string (a `--var` value), within the same bounds."""
    data: Any = None
    for index, node in enumerate(compose_documents(text)):
        if index:
            raise yaml.composer.ComposerError(
                None, None, "expected a single document", node.start_mark
            )
        data = construct(node)
    return data


@dataclass(frozen=True)
class YamlDocument:
    """A parsed YAML file and its node tree, for locating items by their path."""

    path: Path
    data: Any
    root: yaml.Node | None

    def line_of(self, location: Sequence[str | int]) -> int | None:
        """1-based line of the deepest node found along `location` (keys and list indexes)."""
        node = self.root
        if node is None:
            return None
        line = node.start_mark.line + 1
        for part in location:
            child = _child(node, part)
            if child is None:
                break
            node = child
            line = node.start_mark.line + 1
        return line


def _child(node: yaml.Node, part: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                return value  # type: ignore[no-any-return]
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return node.value[part]  # type: ignore[no-any-return]
    return None


def yaml_problem(exc: yaml.YAMLError) -> tuple[str, int | None]:
    """One line for a YAML error, and its 1-based line when known."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        return f"invalid YAML: {exc.problem or exc.context}", mark.line + 1 if mark else None
    return f"invalid YAML: {exc}", None


def load_yaml(path: Path, error: type[InputError] = InputError) -> YamlDocument:
    """Read one YAML document; syntax errors and the bounds above become `error` with the
    file and line."""
    try:
        text = read_regular_file(path, MAX_FILE_BYTES).decode("utf-8")
    except UnreadableFile as exc:
        raise error(exc.reason, path=path) from exc
    except UnicodeDecodeError as exc:
        raise error("not UTF-8 text", path=path) from exc
    root: yaml.Node | None = None
    data: Any = None
    try:
        for index, node in enumerate(compose_documents(text)):
            if index:
                raise yaml.composer.ComposerError(
                    "expected a single document in the stream",
                    None,
                    "but found another document",
                    node.start_mark,
                )
            root, data = node, construct(node)
    except yaml.YAMLError as exc:
        message, line = yaml_problem(exc)
        raise error(message, path=path, line=line) from exc
    return YamlDocument(path=path, data=data, root=root)
