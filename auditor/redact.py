"""Redaction of credential-like values before anything is evaluated, stored or printed.

A redacted value keeps its name, a keyed fingerprint (so drift is visible without the value)
and the fact that it was found: `[REDACTED fp=3f1c09ab52e7]`. Checks look for that marker to
report "secret in environment" findings, so judgement and redaction agree by construction.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Any

MARKER = "[REDACTED"

# Names that hold credentials: NAME_PASSWORD, DB_PASS, api-key, AWS_SECRET_ACCESS_KEY ...
_NAME_TOKENS = (
    "PASSWORD|PASSWD|PASS|PWD|SECRET|TOKEN|APIKEY|API_KEY|ACCESS_KEY|SECRET_KEY|PRIVATE_KEY|"
    "ACCOUNT_KEY|AUTH_KEY|CREDENTIAL|CREDENTIALS|CONNECTION_STRING"
)
_SECRET_NAME = re.compile(rf"(?:^|_)(?:{_NAME_TOKENS})(?:_|$)")
_NOT_SECRET_SUFFIX = re.compile(
    r"_(?:FILE|PATH|DIR|NAME|TYPE|REF|ENABLED|LENGTH|INTERVAL|TTL|TIMEOUT|EXPIRY|EXPIRATION|"
    r"LIFETIME|VERSION)$"
)
_FLAG_VALUES = frozenset({"true", "false", "yes", "no", "on", "off", "0", "1", "none", "null", ""})
# Values that are credentials whatever their name.
_SECRET_VALUE = re.compile(
    r"AKIA[0-9A-Z]{16}"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)"
    r"|Bearer\s+[A-Za-z0-9\-._~+/]{8,}=*"
    r"|gh[pousr]_[A-Za-z0-9]{30,}"
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"
)

# `--db-password=x`, `token: x` inside free text (process arguments, history lines).
_INLINE = re.compile(
    r"(?i)((?:^|(?<=[\s\"'(]))-{0,2}[a-z0-9_.-]*(?:password|passwd|secret|token|api[-_]?key)"
    r"[a-z0-9_.-]*\s*[=:]\s*)([^\s\"',;]+)"
)


@lru_cache(maxsize=65536)
def is_secret_name(name: str) -> bool:
    """True for names such as DB_PASSWORD or api-token, false for PASSWORD_FILE or ALLOW_X."""
    normal = name.upper().replace("-", "_").replace(".", "_")
    if normal.startswith("ALLOW_") or _NOT_SECRET_SUFFIX.search(normal):
        return False
    return bool(_SECRET_NAME.search(normal))


def is_secret_value(name: str, value: str) -> bool:
    """Whether `value`, held under `name`, must be redacted."""
    return bool(_SECRET_VALUE.search(value)) or _secret_by_name(name, value)


def _secret_by_name(name: str, value: str) -> bool:
    """A secret because of its name: not a flag, a path or an already redacted value."""
    if not is_secret_name(name):
        return False
    stripped = value.strip()
    return not (stripped.lower() in _FLAG_VALUES or stripped.startswith("/") or MARKER in stripped)


def fingerprint(value: str) -> str:
    """A keyed fingerprint: equal values give equal fingerprints on one installation, and a
    weak password cannot be recovered by hashing guesses without the key."""
    digest = hmac.new(_fingerprint_key(), value.encode("utf-8", "replace"), hashlib.sha256)
    return digest.hexdigest()[:12]


def redacted(value: str) -> str:
    """The replacement text for a secret value."""
    return f"{MARKER} fp={fingerprint(value)}]"


def redact_text(name: str, value: str) -> str:
    """`value` with credentials replaced: the whole value when its name says secret, otherwise
    the substrings that have a credential's shape or follow `password=` in free text."""
    if MARKER in value:
        return value
    if _SECRET_VALUE.search(value):
        value = _SECRET_VALUE.sub(lambda m: redacted(m.group(0)), value)
    elif _secret_by_name(name, value):
        return redacted(value)
    if not _may_hold_inline_secret(value):
        return value
    return _INLINE.sub(_redact_inline, value)


def _may_hold_inline_secret(value: str) -> bool:
    """Whether `_INLINE` could match: `=` or `:` after one of its words (most text has none)."""
    if "=" not in value and ":" not in value:
        return False
    lowered = value.lower()
    return "pass" in lowered or "secret" in lowered or "token" in lowered or "api" in lowered


def _redact_inline(match: re.Match[str]) -> str:
    key, value = match.group(1), match.group(2)
    if MARKER in value or not is_secret_value(key.strip("-=: "), value):
        return match.group(0)
    return key + redacted(value)


def redact(data: Any) -> Any:
    """JSON-like `data` with every credential-like value redacted: `data` itself when it
    holds none, else a copy (only the dicts and lists on the way to a secret are new).

    Handles `{"PASSWORD": "x"}` maps, `["NAME=value"]` environment lists, `{"name": "X",
    "value": "y"}` pairs (Kubernetes env) and free text holding keys or tokens.
    """
    return _Redaction().value(data, "")


# Maps whose keys name things, not fields: in {"packages": {"passwd": "1:4.13+dfsg1-1"}} the
# key is a package and the value its version, not a password. Their values are judged by
# their shape alone (a token, a private key), as text under no name.
_NAMES_AS_KEYS = frozenset({"packages", "duplicates"})

# (pair, name, text) judged to hold no credential, kept across passes: the hosts of a fleet
# report the same packages, kernel parameters and paths. Only clean texts are kept, so no
# secret outlives the pass that met it; the set is emptied when it grows past its bound.
_CLEAN: set[tuple[bool, str, str]] = set()
_CLEAN_LIMIT = 200_000


class _Redaction:
    """One redaction pass. The same (name, text) pair recurs across the items of a fact (an
    image, a label, a container name in every pod): each is judged once per pass, and the
    texts with a secret in them are forgotten with the pass."""

    def __init__(self) -> None:
        self._texts: dict[tuple[bool, str, str], str] = {}

    def value(self, data: Any, name: str) -> Any:
        if isinstance(data, str):
            return self.text(name, data)
        if isinstance(data, dict):
            pair_name = data.get("name")
            if not isinstance(pair_name, str):
                pair_name = None
            names_are_data = name in _NAMES_AS_KEYS
            copied: dict[str, Any] | None = None
            for key, item in data.items():
                field = "" if names_are_data else str(key)
                if type(item) is str:  # most values: judged here, without a call per value
                    if pair_name is not None and key == "value":
                        clean = self.text(pair_name, item, pair=True)
                    elif (False, field, item) in _CLEAN:
                        continue
                    else:
                        clean = self.text(field, item)
                elif isinstance(item, dict | list | str):
                    clean = self.value(item, field)
                else:
                    continue
                if clean is not item:
                    if copied is None:
                        copied = dict(data)
                    copied[key] = clean
            return data if copied is None else copied
        if isinstance(data, list):
            items: list[Any] | None = None
            for index, item in enumerate(data):
                if isinstance(item, dict | list | str):
                    clean = self.value(item, name)
                    if clean is not item:
                        if items is None:
                            items = list(data)
                        items[index] = clean
            return data if items is None else items
        return data

    def text(self, name: str, data: str, pair: bool = False) -> str:
        """`data` held under `name`; `pair`: the value of a {"name": name, "value": data}."""
        key = (pair, name, data)
        if key in _CLEAN:
            return data
        found = self._texts.get(key)
        if found is None:
            found = redact_text(name, data) if pair else _named(name, data)
            if found == data:
                if len(_CLEAN) >= _CLEAN_LIMIT:
                    _CLEAN.clear()
                _CLEAN.add(key)
                return data
            self._texts[key] = found
        return found


def _named(name: str, data: str) -> str:
    """A string under key `name`, or an environment entry NAME=value."""
    if "=" in data and not data.startswith("="):
        key, _, value = data.partition("=")
        if key and " " not in key and len(key) < 128:
            clean = redact_text(key, value)
            return data if clean == value else f"{key}={clean}"
    return redact_text(name, data)


@lru_cache(maxsize=1)
def _fingerprint_key() -> bytes:
    configured = os.environ.get("AUDITOR_FINGERPRINT_KEY")
    if configured:
        return configured.encode()
    path = data_home() / "fingerprint.key"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key)
    except FileExistsError:
        return path.read_bytes()
    except OSError:
        return key  # read-only home: fingerprints are stable for this process only
    return key


def data_home() -> Path:
    """auditor's directory under the XDG data home (database, fingerprint key)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "auditor"
