"""Redaction of credential-like values before anything is evaluated, stored or printed.

A redacted value keeps its name, a keyed fingerprint (so drift is visible without the value)
and the fact that it was found: `[REDACTED fp=3f1c09ab52e7]`. Checks look for that marker to
report "secret in environment" findings, so judgement and redaction agree by construction.

What is a secret:
- a value whose name says so (DB_PASSWORD, PGPASSWORD, api-key, `{"name": "X_TOKEN", ...}`);
- a value of a known credential shape, by detect-secrets' rules (secret_rules.py): AWS access
  keys, GitHub, GitLab (`glpat-`), Slack, Stripe ... tokens, JWTs, the password of a URL
  (`postgres://admin:PASSWORD@db` keeps scheme, user and host), plus private key blocks and
  bearer tokens;
- an AWS secret access key under any name: a 40-character base64 word with the mixed case
  and entropy of a random key (hex digests such as git commit ids have neither);
- in free text and command lines: `--password=X`, `--password X`, `token: X`, a password in
  quoted JSON (`'{"password": "X"}'`), `PGPASSWORD=X`, and a MySQL client's `-pX`;
- in argument lists (Docker `Args`, Kubernetes `command`/`args`): the item after a flag such
  as `--password` or `--db-token`, and a MySQL client's `-pX`.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import re
import secrets
from collections import Counter
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from auditor.secret_rules import RULES

MARKER = "[REDACTED"

# Names that hold credentials: NAME_PASSWORD, DB_PASS, api-key, AWS_SECRET_ACCESS_KEY ...,
# each a word of its own (not COMPASS, SECRETVOLUME); PASSWORD and PASSWD also at the end of
# a word (PGPASSWORD, MYSQLPASSWD).
_NAME_TOKENS = (
    "PASSWORD|PASSWD|PASS|PWD|SECRET|TOKEN|APIKEY|API_KEY|ACCESS_KEY|SECRET_KEY|PRIVATE_KEY|"
    "ACCOUNT_KEY|AUTH_KEY|CREDENTIAL|CREDENTIALS|CONNECTION_STRING"
)
_SECRET_NAME = re.compile(rf"(?:^|_)(?:{_NAME_TOKENS})(?:_|$)|PASSW(?:OR)?D(?:_|$)")
_NOT_SECRET_SUFFIX = re.compile(
    r"_(?:FILE|PATH|DIR|NAME|TYPE|REF|ENABLED|LENGTH|INTERVAL|TTL|TIMEOUT|EXPIRY|EXPIRATION|"
    r"LIFETIME|VERSION|STDIN)$"
)
_FLAG_VALUES = frozenset({"true", "false", "yes", "no", "on", "off", "0", "1", "none", "null", ""})


def _scoped(pattern: str, flags: int) -> str:
    """`pattern` with its flags applied to it alone, for one alternative of a bigger regex."""
    letters = "".join(
        letter for flag, letter in ((re.IGNORECASE, "i"), (re.VERBOSE, "x")) if flags & flag
    )
    return f"(?{letters}:{pattern})" if letters else f"(?:{pattern})"


# Values that are credentials whatever their name: detect-secrets' rules, then whole private
# key blocks and bearer tokens. One alternation, each rule a named group (`r3`), so one
# search finds the first credential and says which rule found it.
_OWN_SHAPES = (
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)",
    r"Bearer\s+[A-Za-z0-9\-._~+/]{8,}=*",
)
_SECRET_VALUE = re.compile(
    "|".join(
        [f"(?P<r{i}>{_scoped(rule.pattern, rule.flags)})" for i, rule in enumerate(RULES)]
        + [f"(?P<own{i}>{shape})" for i, shape in enumerate(_OWN_SHAPES)]
    )
)
_TOKEN_TAIL = re.compile(r"[A-Za-z0-9\-_.+/=~]*")  # the rest of a token a rule matched the start of

_BASE64_40 = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
_MIN_KEY_ENTROPY = 4.0  # bits per character: random base64 keys have 4.2-5.1, hex digests < 4

# `--db-password=x`, `token: x`, `"password": "x"` inside free text (process arguments,
# history lines, JSON in an argument). Group 1: the key with its separator; the value is a
# quoted string (groups 2, 3) or a bare word (group 4).
_SECRET_WORD = r"(?:password|passwd|pwd|secret|token|api[-_]?key)"
_INLINE = re.compile(
    rf"""(?ix)
    ( (?:^|(?<=[\s"'(,{{]))
      (?!(?:no)?passwd\s*:)  # sudoers' tags (`NOPASSWD: ALL`) name no password
      -{{0,2}}[a-z0-9_.-]*{_SECRET_WORD}[a-z0-9_.-]*
      ["']?\s*[=:]\s* )
    (?: "((?:[^"\\]|\\.)*)" | '([^']*)' | ([^\s"',;}}]+) )
    """
)
# `--password VALUE` (a flag, a space, its value) in a command line.
_SPACED_FLAG = re.compile(
    rf"(?i)(?:^|(?<=\s))(-{{1,2}}[a-z0-9_.-]*{_SECRET_WORD}[a-z0-9_.-]*)(\s+)(?!-)(\S+)"
)
# MySQL and MariaDB clients take the password glued to -p: `mysql -uroot -pS3cret db`.
_MYSQL_CLIENTS = frozenset(
    {"mysql", "mysqldump", "mysqladmin", "mysqlimport", "mysqlshow", "mysqlcheck", "mysqlpump",
     "mariadb", "mariadb-dump", "mariadb-admin", "mariadb-import", "mariadb-show",
     "mariadb-check"}
)  # fmt: skip
_GLUED_P = re.compile(r"(?:^|(?<=\s))-p(\S+)")
_FLAG_ITEM = re.compile(rf"(?i)^-{{1,2}}[a-z0-9_.-]*{_SECRET_WORD}[a-z0-9_.-]*$")


@lru_cache(maxsize=65536)
def is_secret_name(name: str) -> bool:
    """True for names such as DB_PASSWORD, PGPASSWORD or api-token, false for PASSWORD_FILE
    or ALLOW_X."""
    normal = name.upper().replace("-", "_").replace(".", "_")
    if normal.startswith("ALLOW_") or _NOT_SECRET_SUFFIX.search(normal):
        return False
    return bool(_SECRET_NAME.search(normal))


def is_secret_value(name: str, value: str) -> bool:
    """Whether `value`, held under `name`, must be redacted."""
    return (
        bool(_SECRET_VALUE.search(value))
        or _secret_by_name(name, value)
        or _looks_like_aws_secret(value)
    )


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


def fingerprint_key_id() -> str:
    """Names the fingerprint key without revealing it: fingerprints kept for later runs (the
    image layer cache) are only reused under the key that made them."""
    return hashlib.sha256(b"auditor fingerprint key id\0" + _fingerprint_key()).hexdigest()[:16]


def redacted(value: str) -> str:
    """The replacement text for a secret value."""
    return f"{MARKER} fp={fingerprint(value)}]"


def redact_text(name: str, value: str) -> str:
    """`value` with credentials replaced: the whole value when its name says secret, otherwise
    the substrings that have a credential's shape or follow `password=` in free text."""
    if MARKER in value:
        return value
    if _SECRET_VALUE.search(value):
        value = _redact_shapes(value)
    elif _secret_by_name(name, value) or _looks_like_aws_secret(value):
        return redacted(value)
    if len(value) > 40:  # an AWS secret access key among other words, whatever names it
        value = _BASE64_40.sub(_redact_random_key, value)
    if _may_hold_inline_secret(value):
        value = _INLINE.sub(_redact_inline, value)
        value = _SPACED_FLAG.sub(_redact_spaced, value)
    if " -p" in value and _program(value.split(None, 1)[0]) in _MYSQL_CLIENTS:
        value = _GLUED_P.sub(_redact_glued, value)
    return value


def _redact_glued(match: re.Match[str]) -> str:
    secret = match.group(1)
    return match.group(0) if MARKER in secret else "-p" + redacted(secret)


def _redact_shapes(value: str) -> str:
    """Every credential-shaped part of `value` replaced, left to right."""
    out: list[str] = []
    at = 0
    for match in _SECRET_VALUE.finditer(value):
        start, end = match.span()
        if start < at:  # inside the token a previous match was extended over
            continue
        name = match.lastgroup or ""
        if name.startswith("r"):
            index = int(name[1:])
            group = RULES[index].group
            if group:  # only the secret part: keep `https://user:` and `@host`
                own = _rule(index).match(value, start)
                if own is None or own.start(group) < 0:
                    continue
                start, end = own.span(group)
            else:
                tail = _TOKEN_TAIL.match(value, end)
                end = tail.end() if tail else end
        out += [value[at:start], redacted(value[start:end])]
        at = end
    out.append(value[at:])
    return "".join(out)


@cache
def _rule(index: int) -> re.Pattern[str]:
    """Rule `index` alone (to find its secret group where the alternation matched)."""
    return re.compile(RULES[index].pattern, RULES[index].flags)


def _entropy(text: str) -> float:
    counts = Counter(text)
    size = len(text)
    return -sum(n / size * math.log2(n / size) for n in counts.values())


def _random_key(text: str) -> bool:
    """40 characters of base64 that look random: mixed case, a digit or / +, high entropy
    (git commit ids and other hex digests have no mixed case and less entropy)."""
    return (
        any(c.islower() for c in text)
        and any(c.isupper() for c in text)
        and any(c.isdigit() or c in "/+" for c in text)
        and _entropy(text) >= _MIN_KEY_ENTROPY
    )


def _looks_like_aws_secret(value: str) -> bool:
    """A whole value that is an AWS secret access key, whatever it is called."""
    stripped = value.strip()
    return len(stripped) == 40 and bool(_BASE64_40.fullmatch(stripped)) and _random_key(stripped)


def _redact_random_key(match: re.Match[str]) -> str:
    return redacted(match.group(0)) if _random_key(match.group(0)) else match.group(0)


def _may_hold_inline_secret(value: str) -> bool:
    """Whether `_INLINE` or `_SPACED_FLAG` could match (most text has none of their words)."""
    lowered = value.lower()
    return (
        "pass" in lowered
        or "pwd" in lowered
        or "secret" in lowered
        or "token" in lowered
        or "api" in lowered
    )


def _redact_inline(match: re.Match[str]) -> str:
    key = match.group(1)
    for group in (2, 3, 4):
        secret = match.group(group)
        if secret is not None:
            break
    if MARKER in secret or not is_secret_value(key.strip("-=: \"'"), secret):
        return match.group(0)
    start, end = match.span(group)
    whole_start = match.start()
    text = match.group(0)
    return text[: start - whole_start] + redacted(secret) + text[end - whole_start :]


def _redact_spaced(match: re.Match[str]) -> str:
    flag, space, secret = match.groups()
    if MARKER in secret or not _secret_by_name(flag.strip("-"), secret):
        return match.group(0)
    return flag + space + redacted(secret)


def _program(word: str) -> str:
    return word.rsplit("/", 1)[-1]


def redact_arguments(items: list[Any], program: str | None = None) -> list[Any] | None:
    """An argument list (`["mysqld", "--password", "x"]`) with the values of secret flags
    redacted, or None when it has none. Only the context of the list makes them secret.
    `program`: the command the arguments are for, when the list does not start with it
    (Docker's `Path` beside `Args`)."""
    changed: list[Any] | None = None
    if program is None and items and isinstance(items[0], str):
        program = items[0]
    mysql = program is not None and _program(program) in _MYSQL_CLIENTS
    for index, item in enumerate(items):
        if not isinstance(item, str) or not item.startswith("-") or MARKER in item:
            continue
        clean = item
        if mysql and item.startswith("-p") and len(item) > 2:
            clean = "-p" + redacted(item[2:])
        elif _FLAG_ITEM.match(item) and index + 1 < len(items):
            following = items[index + 1]
            if (
                isinstance(following, str)
                and not following.startswith("-")
                and _secret_by_name(item.lstrip("-"), following)
            ):
                changed = changed if changed is not None else list(items)
                changed[index + 1] = redacted(following)
            continue
        if clean is not item:
            changed = changed if changed is not None else list(items)
            changed[index] = clean
    return changed


# Argument lists whose command is a sibling field: Docker's Path + Args and Entrypoint + Cmd,
# Kubernetes' command + args.
_COMMAND_OF = {"Args": "Path", "Cmd": "Entrypoint", "args": "command"}


def _program_of(data: dict[str, Any], key: str) -> str | None:
    """The command the argument list `data[key]` is for, when a sibling field names it."""
    command = data.get(_COMMAND_OF.get(key, ""))
    if isinstance(command, list):
        command = command[0] if command else None
    return command if isinstance(command, str) else None


def redact(data: Any) -> Any:
    """JSON-like `data` with every credential-like value redacted: `data` itself when it
    holds none, else a copy (only the dicts and lists on the way to a secret are new).

    Handles `{"PASSWORD": "x"}` maps, `["NAME=value"]` environment lists, `{"name": "X",
    "value": "y"}` pairs (Kubernetes env), argument lists and free text holding keys or tokens.
    The `location` of a fact's item (the snapshot file:line auditor gives it) is kept as it is:
    `sa-token.yaml:12` is a place, not a `token: 12` pair.
    """
    redaction = _Redaction()
    if not isinstance(data, list):
        return redaction.item(data)
    items: list[Any] | None = None
    for index, item in enumerate(data):
        clean = redaction.item(item)
        if clean is not item:
            if items is None:
                items = list(data)
            items[index] = clean
    return data if items is None else items


# Maps whose keys name things, not fields: in {"packages": {"passwd": "1:4.13+dfsg1-1"}} the
# key is a package and the value its version, not a password. Their values are judged by
# their shape alone (a token, a private key), as text under no name.
_NAMES_AS_KEYS = frozenset({"packages", "duplicates"})
_LOCATION = "location"  # the file:line of a fact's item, set by auditor (snapshots)

# Fields of auditor's own host facts that describe passwords without holding one: account
# names with a password set or empty, an account's password state ("shadow", "locked").
# Their values are judged by their shape alone: the evidence must name the accounts.
_ABOUT_PASSWORDS = frozenset({"password_set", "empty_password", "password_state"})

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
        self._program: str | None = None  # the command of the argument list being visited

    def item(self, data: Any) -> Any:
        """A fact, or an item of a list fact: everything but its own `location` is judged."""
        if not (isinstance(data, dict) and isinstance(data.get(_LOCATION), str)):
            return self.value(data, "")
        rest = {key: value for key, value in data.items() if key != _LOCATION}
        clean = self.value(rest, "")
        if clean is rest:
            return data
        return {key: data[key] if key == _LOCATION else clean[key] for key in data}

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
                field = "" if names_are_data or key in _ABOUT_PASSWORDS else str(key)
                if type(item) is str:  # most values: judged here, without a call per value
                    if pair_name is not None and key == "value":
                        clean = self.text(pair_name, item, pair=True)
                    elif (False, field, item) in _CLEAN:
                        continue
                    else:
                        clean = self.text(field, item)
                elif isinstance(item, dict | list | str):
                    self._program = _program_of(data, key) if key in _COMMAND_OF else None
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
            program, self._program = self._program, None
            if data and type(data[0]) is str and any(type(i) is str and i[:1] == "-" for i in data):
                items = redact_arguments(data, program)  # `--password VALUE`: by its neighbour
            for index, item in enumerate(data if items is None else items):
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
