"""YAML loading that remembers where things are, so every input error can name its line."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from auditor.errors import InputError

# libyaml's parser when PyYAML was built with it: an order of magnitude faster.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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


def load_yaml(path: Path, error: type[InputError] = InputError) -> YamlDocument:
    """Read one YAML document; syntax errors become `error` with the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"cannot read: {exc.strerror}", path=path) from exc
    except UnicodeDecodeError as exc:
        raise error("not UTF-8 text", path=path) from exc
    loader = _LOADER(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise error(f"invalid YAML: {exc.problem or exc.context}", path=path, line=line) from exc
    except yaml.YAMLError as exc:
        raise error(f"invalid YAML: {exc}", path=path) from exc
    finally:
        loader.dispose()
    return YamlDocument(path=path, data=data, root=root)
