"""The named helper functions checks may call from CEL, each unit tested (tests/unit/test_expr.py).

Python enters judgement only here: file-mode bitmasks, version comparison, flag parsing,
written-down defaults (`get`).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any


def _mode_at_most(mode: str | int, limit: str | int) -> bool:
    """True when `mode` grants no permission bit outside `limit` ('0640' within '0644')."""
    actual = int(mode, 8) if isinstance(mode, str) else mode
    allowed = int(limit, 8) if isinstance(limit, str) else limit
    return (actual & 0o7777 & ~allowed) == 0


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = re.findall(r"\d+", version.split("+")[0].split("~")[0])
    return tuple(int(p) for p in parts)


def _version_at_least(version: str, minimum: str) -> bool:
    """Numeric comparison of dotted versions: '1.28.3' >= '1.27'; a leading 'v' is ignored."""
    return _version_tuple(version) >= _version_tuple(minimum)


def _flag(args: list[Any] | str, name: str) -> str | None:
    """The value of command-line flag `name` in `args`, the last one winning as in Go's flag
    package: ['--anonymous-auth=false'] -> 'false'; a bare '--flag' -> 'true'; absent -> null."""
    items = args.split() if isinstance(args, str) else [str(a) for a in args]
    key = "--" + name.lstrip("-")
    value: str | None = None
    for index, item in enumerate(items):
        if item == key:
            following = items[index + 1] if index + 1 < len(items) else ""
            value = following if following and not following.startswith("-") else "true"
        elif item.startswith(key + "="):
            value = item[len(key) + 1 :]
    return value


def _glob(value: str, pattern: str) -> bool:
    """Shell-style match: glob('nginx:1.25', 'nginx:*')."""
    return fnmatch.fnmatchcase(value, pattern)


def _glob_any(value: str, patterns: list[str]) -> bool:
    """True when `value` matches any of the shell-style patterns."""
    return any(fnmatch.fnmatchcase(value, p) for p in patterns)


def _path_within(path: str, parents: list[str]) -> str | None:
    """The first of `parents` that `path` is or lies under ('/etc/ssh' within ['/etc']), else
    null. '/' only matches '/' itself, so it must be listed to catch the whole file system."""
    normal = "/" + path.strip("/")
    for parent in parents:
        base = "/" + parent.strip("/")
        if normal == base or (base != "/" and normal.startswith(base + "/")):
            return parent
    return None


def _days_since(when: str) -> float:
    """Days between an ISO 8601 / RFC 3339 time and now (negative for the future)."""
    moment = datetime.fromisoformat(when.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (datetime.now(UTC) - moment).total_seconds() / 86400


def _lower(value: str) -> str:
    return value.lower()


def _upper(value: str) -> str:
    return value.upper()


def _split(value: str, separator: str) -> list[str]:
    return value.split(separator)


def _join(values: list[Any], separator: str) -> str:
    return separator.join(str(v) for v in values)


def _trim(value: str) -> str:
    return value.strip()


def _regex_find(value: str, pattern: str) -> str | None:
    """The first match of `pattern` in `value`, or null."""
    found = re.search(pattern, value)
    return found.group(0) if found else None


def _keys(mapping: Mapping[str, Any]) -> list[str]:
    return list(mapping)


def _get(mapping: Mapping[str, Any] | None, key: str, default: Any) -> Any:
    """mapping[key] when present and not null, else `default`: written-down defaults."""
    if mapping is None:
        return default
    value = mapping.get(key)
    return default if value is None else value


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "mode_at_most": _mode_at_most,
    "version_at_least": _version_at_least,
    "flag": _flag,
    "glob": _glob,
    "glob_any": _glob_any,
    "path_within": _path_within,
    "days_since": _days_since,
    "lower": _lower,
    "upper": _upper,
    "split": _split,
    "join": _join,
    "trim": _trim,
    "regex_find": _regex_find,
    "keys": _keys,
    "get": _get,
}
