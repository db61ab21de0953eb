"""Mutations of valid inputs for the fuzz test: structure-aware (a parsed YAML/JSON tree with a
node replaced by a hostile value, a key dropped or renamed, an item repeated) and textual (a
line dropped or repeated, a YAML token inserted, a byte flipped, the text cut short).

Every mutation is drawn from a `random.Random`, so a seed reproduces a whole fuzz run.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

import yaml

DEEP = 300  # past the loader's 200 levels, cheap enough to run in process


class _Loader(yaml.SafeLoader):
    """Dates stay text, as auditor reads them."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if not tag.endswith("timestamp")]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


def _deep(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


HOSTILE_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    5,
    2**70,
    1e308,
    "",
    " ",
    "x" * 10_000,
    "2026-02-30",
    "2027-13-40",
    20990101,
    "20990101",
    [],
    {},
    [1, 2, 3],
    {"a": "b"},
    "\ud800",
    "../../../etc/passwd",  # a hostile value, never read
    "/dev/zero",
    "ssh://[::1",
    "local://foo",
    "*",
    "{{ 7 * 7 }}",
    "<script>alert(1)</script>",
    "a\nb",
    "\x00",
    "has('x') && size(",
    "(a+)+$",
]

SNIPPETS = [
    "&a ",
    "*a",
    "*undefined ",
    "!!binary x",
    "!!int abc ",
    "!!timestamp 2026-02-30 ",
    "!!python/object/apply:os.system ['true'] ",
    "<<: *a\n",
    "- ",
    ": ",
    "? ",
    "{",
    "[",
    "]",
    "}",
    "\t",
    "\x00",
    "\ufeff",
    '"',
    "'",
    "\n---\n",
    "%YAML 1.1\n---\n",
    "\\ud800",
    "9" * 5000,
]


@dataclass(frozen=True)
class Mutant:
    """One mutated input: its bytes and how it was made (shown when it fails)."""

    data: bytes
    how: str


def mutate(text: str, fmt: str, rng: random.Random) -> Mutant:
    """One mutation of `text` (a YAML or JSON document, `fmt` says which)."""
    if rng.random() < 0.55:
        try:
            tree = json.loads(text) if fmt == "json" else yaml.load(text, Loader=_Loader)
        except (ValueError, yaml.YAMLError):
            tree = None
        if tree is not None:
            tree, how = mutate_tree(tree, rng)
            return Mutant(dump(tree, fmt, rng), how)
    return mutate_text(text, rng)


def mutate_tree(tree: Any, rng: random.Random) -> tuple[Any, str]:
    """`tree` with one node changed; the path and the change are described."""
    paths = list(_paths(tree, ()))
    path = rng.choice(paths)
    parent_path, key = path[:-1], path[-1] if path else None
    action = rng.choice(["replace", "replace", "replace", "delete", "rename", "repeat", "deep"])
    if key is None:  # the root itself
        return rng.choice(HOSTILE_VALUES + [_deep(DEEP)]), "root replaced"
    parent = _at(tree, parent_path)
    shown = "/".join(str(p) for p in path)
    if action == "replace":
        value = rng.choice(HOSTILE_VALUES)
        parent[key] = value
        return tree, f"{shown} = {str(value)[:40]!r}"
    if action == "deep":
        parent[key] = _deep(DEEP)
        return tree, f"{shown} nested {DEEP} deep"
    if action == "delete":
        del parent[key]
        return tree, f"{shown} deleted"
    if action == "rename" and isinstance(parent, dict):
        parent[f"{key}_x"] = parent.pop(key)
        return tree, f"{shown} renamed"
    if isinstance(parent, list):
        parent.insert(key, parent[key])
        return tree, f"{shown} repeated"
    parent[key] = [parent[key], parent[key]]
    return tree, f"{shown} doubled"


def mutate_text(text: str, rng: random.Random) -> Mutant:
    lines = text.splitlines(keepends=True) or [""]
    action = rng.choice(["drop", "repeat", "insert", "insert", "flip", "cut", "swap"])
    at = rng.randrange(len(lines))
    if action == "drop":
        del lines[at]
        return Mutant("".join(lines).encode(), f"line {at + 1} dropped")
    if action == "repeat":
        lines.insert(at, lines[at])
        return Mutant("".join(lines).encode(), f"line {at + 1} repeated")
    if action == "swap":
        other = rng.randrange(len(lines))
        lines[at], lines[other] = lines[other], lines[at]
        return Mutant("".join(lines).encode(), f"lines {at + 1} and {other + 1} swapped")
    position = rng.randrange(len(text) + 1)
    if action == "insert":
        snippet = rng.choice(SNIPPETS)
        data = (text[:position] + snippet + text[position:]).encode("utf-8", "surrogatepass")
        return Mutant(data, f"{snippet[:20]!r} inserted at {position}")
    if action == "cut":
        return Mutant(text[:position].encode(), f"cut at {position}")
    raw = bytearray(text.encode())
    index = rng.randrange(len(raw)) if raw else 0
    if raw:
        raw[index] ^= 1 << rng.randrange(8)
    return Mutant(bytes(raw), f"bit flipped at byte {index}")


def dump(tree: Any, fmt: str, rng: random.Random) -> bytes:
    """The tree as text: JSON for JSON inputs (and, as JSON is YAML, sometimes for YAML ones),
    else block YAML."""
    if fmt == "yaml" and rng.random() < 0.6:
        try:
            return yaml.safe_dump(tree, sort_keys=False, allow_unicode=True).encode(
                "utf-8", "surrogatepass"
            )
        except (RecursionError, yaml.YAMLError, UnicodeError):
            pass
    return json.dumps(tree, indent=1, default=str).encode()


def _paths(node: Any, path: tuple[Any, ...]) -> Any:
    yield path
    if len(path) > 12:
        return
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*path, index))


def _at(tree: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        tree = tree[part]
    return tree
