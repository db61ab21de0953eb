"""The named helper functions checks may call from CEL, each unit tested (tests/unit/test_expr.py).

Python enters judgement only here: file-mode bitmasks, version comparison, flag parsing,
written-down defaults (`get`).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import re2  # google-re2: linear time, no backtracking

from auditor.expr.budget import within_budget


def _mode_at_most(mode: str | int, limit: str | int) -> bool:
    """True when `mode` grants no permission bit outside `limit` ('0640' within '0644')."""
    actual = int(mode, 8) if isinstance(mode, str) else mode
    allowed = int(limit, 8) if isinstance(limit, str) else limit
    return (actual & 0o7777 & ~allowed) == 0


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version))


def _version_at_least(version: str, minimum: str) -> bool:
    """`version` >= `minimum`: '1.28.3' >= '1.27', and a pre-release orders before its
    release ('1.28.0-rc.1' < '1.28.0'). A leading 'v', build metadata ('+dfsg1', '+k3s1')
    and repack marks ('~ds1') are ignored. Semantic and PEP 440 versions compare by
    packaging.version; the rest (kernels such as '6.1.0-18-amd64', '~' pre-releases) by
    Debian's rules; what neither parses ('...el9_4.x86_64') by its numbers."""
    from debian.debian_support import Version as DebianVersion
    from packaging.version import InvalidVersion, Version

    def plain(text: str) -> str:
        text = text.strip().removeprefix("v").removeprefix("V").split("+")[0]
        return re.sub(r"~(ds|dfsg|repack)\d*$", "", text)

    mine, least = plain(version), plain(minimum)
    try:
        return Version(mine) >= Version(least)
    except InvalidVersion:
        pass
    try:
        return DebianVersion(mine) >= DebianVersion(least)
    except ValueError:
        return _version_tuple(mine) >= _version_tuple(least)


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
    """The first match of `pattern` (RE2 syntax) in `value`, or null."""
    found = regex(pattern).search(value)
    return found.group(0) if found else None


@lru_cache(maxsize=256)
def regex(pattern: str) -> Any:
    """`pattern` compiled by RE2, which runs in time linear in the text: a check's regex
    cannot backtrack catastrophically (`(a+)+$`). ValueError says why a pattern is invalid."""
    options = re2.Options()
    options.log_errors = False  # RE2 would print its own line on stderr
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args else "invalid"
        if isinstance(reason, str) and reason.endswith(": " + pattern):
            reason = reason[: -len(pattern) - 2]
        raise ValueError(f"invalid regex {pattern!r}: {reason}") from None


def _keys(mapping: Mapping[str, Any]) -> list[str]:
    return list(mapping)


def _get(mapping: Mapping[str, Any] | None, key: str, default: Any) -> Any:
    """mapping[key] when present and not null, else `default`: written-down defaults."""
    if mapping is None:
        return default
    value = mapping.get(key)
    return default if value is None else value


_HELPERS: dict[str, Callable[..., Any]] = {
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
# Each helper refuses to start once the expression calling it is past its budget.
FUNCTIONS: dict[str, Callable[..., Any]] = {
    name: within_budget(function) for name, function in _HELPERS.items()
}
