"""The one YAML loader: bounded depth and aliases, duplicate keys refused, dates as text."""

from __future__ import annotations

import pytest
import yaml

from auditor.errors import InputError
from auditor.yamlsrc import MAX_ALIAS_NODES, MAX_DEPTH, load_yaml, parse_value


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def depth_of(value) -> int:
    depth = 0
    while isinstance(value, list) and value:
        value, depth = value[0], depth + 1
    return depth + (1 if value == [] else 0)


def test_nesting_up_to_the_bound_is_read_and_past_it_refused_with_its_line():
    assert depth_of(parse_value(nested(MAX_DEPTH))) == MAX_DEPTH
    with pytest.raises(yaml.YAMLError, match=f"nested deeper than {MAX_DEPTH} levels"):
        parse_value(nested(MAX_DEPTH + 1))


@pytest.mark.parametrize("depth", [100_000, 1_000_000])
def test_very_deep_nesting_is_refused_without_recursion(depth):
    """libyaml's own composer recurses in C and kills the process near 100,000 levels."""
    with pytest.raises(yaml.YAMLError, match="nested deeper"):
        parse_value(nested(depth))
    block = "".join("  " * i + "a:\n" for i in range(1000))
    with pytest.raises(yaml.YAMLError, match="nested deeper"):
        parse_value(block)


def test_an_alias_bomb_is_refused_and_small_aliases_are_read():
    bomb = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    bomb += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    with pytest.raises(yaml.YAMLError, match=f"aliases expand to more than {MAX_ALIAS_NODES}"):
        parse_value("\n".join(bomb))
    assert parse_value("base: &b {x: 1}\nother: {<<: *b, y: 2}") == {
        "base": {"x": 1},
        "other": {"x": 1, "y": 2},
    }


def test_an_alias_that_is_deep_through_its_anchor_counts_its_depth():
    text = f"a: &a {nested(150)}\nb: {'[' * 60}*a{']' * 60}"
    with pytest.raises(yaml.YAMLError, match="through an alias"):
        parse_value(text)


def test_an_alias_inside_its_own_anchor_is_refused():
    with pytest.raises(yaml.YAMLError, match="inside the node it names"):
        parse_value("a: &a [1, *a]")


def test_dates_stay_text_for_the_schemas_to_check():
    assert parse_value(
        "{a: 2026-02-30, b: 2026-01-01, c: !!timestamp 2027-13-40, d: 2026-01-01T10:00:00Z}"
    ) == {
        "a": "2026-02-30",
        "b": "2026-01-01",
        "c": "2027-13-40",
        "d": "2026-01-01T10:00:00Z",
    }


def test_other_implicit_types_are_kept():
    assert parse_value("[yes, 'yes', 1, 1.5, ~, 0x10]") == [True, "yes", 1, 1.5, None, 16]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("!!int abc", "cannot read the value"),
        ("x: " + "9" * 5000, "cannot read the value"),
        ("? [a]\n: b", "unhashable"),
        ("*nowhere", "undefined alias"),
        ("a: 1\n---\nb: 2", "single document"),
    ],
)
def test_values_yaml_cannot_construct_are_yaml_errors(text, expected):
    with pytest.raises(yaml.YAMLError, match=expected):
        parse_value(text)


def test_a_duplicate_key_names_both_lines(tmp_path):
    path = tmp_path / "overlay.yaml"
    path.write_text("checks:\n  - id: x\n    assert: 'true'\n    title: t\n    assert: 'false'\n")
    with pytest.raises(InputError) as caught:
        load_yaml(path)
    assert str(caught.value) == (
        f"{path}:5: invalid YAML: duplicate key 'assert' (first on line 3)"
    )


def test_equal_text_of_another_type_is_not_a_duplicate():
    assert parse_value("{1: a, '1': b}") == {1: "a", "1": "b"}


def test_load_yaml_names_the_file_and_line_of_the_bound(tmp_path):
    path = tmp_path / "inventory.yaml"
    path.write_text("hosts:\n  web1: " + nested(100_000) + "\n")
    with pytest.raises(InputError) as caught:
        load_yaml(path)
    assert str(caught.value) == f"{path}:2: invalid YAML: nested deeper than {MAX_DEPTH} levels"


def test_load_yaml_of_an_empty_file_is_none(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_yaml(path).data is None
