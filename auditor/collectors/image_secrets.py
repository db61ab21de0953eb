"""Secrets in an image's files: which files can hold text, and one pass of every rule over them.

A file is first classified by its name and its first bytes (`should_read`): executables,
archives, compressed data, images, fonts, compiled Python and message catalogues cannot hold a
readable secret and are never searched; credential files of a known name always are. The
content rules (detect-secrets' denylist, secret_rules.RULES, plus private key blocks and the
unquoted `aws_secret_access_key = ...` of AWS credential files) run as one Hyperscan database
in prefilter mode over the bytes of a file: one scan tells which rules can match, and only
those run as Python regular expressions to take the secret (and the prefilter's false
positives are dropped there). Without Hyperscan (it has wheels for x86_64 Linux only) every
rule runs as a regular expression: the same findings, slower. Rules for files of a known
name (.docker/config.json, .npmrc, .pypirc, .git-credentials, .netrc) run on those files only.

A secret is returned as kind and keyed fingerprint, never as its value; values that
documentation and SDK tests ship as placeholders (EXAMPLE, xxxxxxxx, <token>) are ignored.
"""

from __future__ import annotations

import fnmatch
import hashlib
import posixpath
import re
import threading
from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any, NamedTuple

from auditor.redact import fingerprint
from auditor.secret_rules import RULE_SET, RULES
from auditor.secret_rules import Rule as DenylistRule

try:
    import hyperscan
except ImportError:  # no wheel for this platform: the regular expressions alone
    hyperscan = None  # type: ignore[assignment]


class SecretRule(NamedTuple):
    """One pattern over a file's bytes; group `group` (0: the whole match) is the secret."""

    kind: str
    pattern: bytes
    flags: int = 0
    group: int = 0
    files: tuple[str, ...] = ()  # shell patterns of the paths it applies to; () = every file
    # What the prefilter looks for instead of `pattern`, where the pattern itself would take
    # Hyperscan long to compile: a part that every match contains.
    prefilter: bytes | None = None


# detect-secrets' plugins by the kind of secret auditor reports.
_PLUGIN_KINDS = {
    "AWSKeyDetector": "aws-access-key-id",
    "AzureStorageKeyDetector": "azure-storage-key",
    "BasicAuthDetector": "url-password",
    "DiscordBotTokenDetector": "discord-bot-token",
    "GitHubTokenDetector": "github-token",
    "GitLabTokenDetector": "gitlab-token",
    "JwtTokenDetector": "jwt",
    "MailchimpDetector": "mailchimp-key",
    "NpmDetector": "npm-token",
    "OpenAIDetector": "openai-key",
    "PypiTokenDetector": "pypi-token",
    "SendGridDetector": "sendgrid-key",
    "SlackDetector": "slack-token",
    "SquareOAuthDetector": "square-oauth-secret",
    "StripeDetector": "stripe-key",
    "TelegramBotTokenDetector": "telegram-bot-token",
}


def _kind(rule: DenylistRule) -> str:
    if rule.plugin == "AWSKeyDetector" and rule.group:
        return "aws-secret-access-key"  # the quoted 40-character key near an "aws...key" name
    if rule.plugin == "SlackDetector" and "hooks" in rule.pattern:
        return "slack-webhook"
    return _PLUGIN_KINDS[rule.plugin]


def _denylist_rule(rule: DenylistRule) -> SecretRule:
    return SecretRule(_kind(rule), rule.pattern.encode("ascii"), rule.flags, rule.group)


CONTENT_RULES: tuple[SecretRule, ...] = (
    SecretRule(
        "private-key",
        rb"-----BEGIN ([A-Z0-9 ]{0,40}PRIVATE KEY)-----[A-Za-z0-9+/=\s:,.\-]{64,20000}?"
        rb"-----END \1-----",
        prefilter=rb"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY-----",
    ),
    # AWS credential and config files write the key unquoted, which detect-secrets misses.
    SecretRule(
        "aws-secret-access-key",
        rb"aws_secret_access_key\s*[=:]\s*[\"']?([A-Za-z0-9/+=]{40})\b",
        re.IGNORECASE,
        1,
    ),
    *(_denylist_rule(rule) for rule in RULES),
)
# Credentials that only mean something in files of a known name; checked before the content
# rules, so a value both find is reported under the file's kind.
NAMED_RULES: tuple[SecretRule, ...] = (
    SecretRule(
        "registry-credential",
        rb"\"(?:auth|identitytoken)\"\s*:\s*\"([^\"]{8,})\"",
        group=1,
        files=("*/.docker/config.json",),
    ),
    SecretRule(
        "registry-credential", rb"\"auth\"\s*:\s*\"([^\"]{8,})\"", group=1, files=("*/.dockercfg",)
    ),
    SecretRule("npm-token", rb"_auth(?:Token)?\s*=\s*([^\s\"']{8,})", group=1, files=("*/.npmrc",)),
    SecretRule("pypi-password", rb"^\s*password\s*[=:]\s*(\S+)", re.MULTILINE, 1, ("*/.pypirc",)),
    SecretRule(
        "git-credential",
        rb"https?://[^:/\s]+:([^@\s]+)@",
        group=1,
        files=("*/.git-credentials",),
    ),
    SecretRule("netrc-password", rb"\bpassword\s+(\S+)", group=1, files=("*/.netrc", "*/_netrc")),
)
# Placeholder values that documentation and SDK tests ship: containing one of these words ...
_PLACEHOLDER = re.compile(rb"EXAMPLE|example|XXXXXXXX|xxxxxxxx|<[a-z_]+>")
# ... or being one of these, as in `https://user:password@host` or a template's
# `://app:{{ db_password }}@db` (found only by the URL password rule; the others need a shape).
_PLACEHOLDER_VALUE = re.compile(
    rb"(?i)password|passwd|pass|pwd|secret|changeme|\*+|\{\{.*\}\}|%\(\w+\)s|%s"
)

# Classification. Magic numbers of formats that hold no readable text (or only compressed):
_BINARY_MAGIC: tuple[bytes, ...] = (
    b"\x7fELF",  # executables and shared libraries
    b"\x1f\x8b",  # gzip
    b"\xfd7zXZ\x00",  # xz
    b"BZh",  # bzip2
    b"\x28\xb5\x2f\xfd",  # zstd
    b"\x04\x22\x4d\x18",  # lz4
    b"PK\x03\x04",  # zip, jar, wheel, apk
    b"7z\xbc\xaf\x27\x1c",  # 7-zip
    b"!<arch>\n",  # ar: .deb packages, static libraries
    b"\x89PNG",
    b"\xff\xd8\xff",  # JPEG
    b"GIF8",
    b"\x00\x00\x01\x00",  # ICO
    b"RIFF",  # WebP, WAV, AVI
    b"wOFF",
    b"wOF2",
    b"\x00\x01\x00\x00\x00",  # TrueType
    b"OTTO",  # OpenType
    b"\xde\x12\x04\x95",  # gettext .mo, little endian
    b"\x95\x04\x12\xde",  # gettext .mo, big endian
    b"\xca\xfe\xba\xbe",  # Java class, Mach-O universal
    b"\x00asm",  # WebAssembly
    b"TZif",  # time zone data
)
# File names whose format holds no readable secret, whatever their first bytes.
_BINARY_SUFFIXES: tuple[str, ...] = (
    ".pyc", ".pyo", ".mo", ".gmo", ".gz", ".xz", ".bz2", ".zst", ".lz4", ".zip", ".jar", ".whl",
    ".deb", ".rpm", ".a", ".o", ".so", ".png", ".jpg", ".jpeg", ".gif", ".ico", ".webp", ".woff",
    ".woff2", ".ttf", ".otf", ".class", ".wasm",
)  # fmt: skip
_BINARY_NAMES = frozenset({"locale-archive", "ld.so.cache"})
# Credential files by name: searched whatever their content looks like.
_CREDENTIAL_FILES: tuple[str, ...] = (
    *dict.fromkeys(glob for rule in NAMED_RULES for glob in rule.files),
    *("*/.aws/credentials", "*/.ssh/id_*", "*.pem", "*.key"),
)


def _rules_digest() -> str:
    """A digest of everything that decides what is found, for SCAN_RULES_VERSION."""
    parts: list[Any] = [RULE_SET, CONTENT_RULES, NAMED_RULES]
    parts += [_PLACEHOLDER.pattern, _PLACEHOLDER_VALUE.pattern]
    parts += [_BINARY_MAGIC, _BINARY_SUFFIXES, sorted(_BINARY_NAMES), sorted(_CREDENTIAL_FILES)]
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:12]


# Changes whenever a rule or the classification changes: layer findings cached under another
# version are not reused.
SCAN_RULES_VERSION = f"image-secrets/{_rules_digest()}"


@cache
def _globs(patterns: tuple[str, ...]) -> re.Pattern[str]:
    """Shell patterns as one regular expression (fnmatch's translation, matched at once)."""
    return re.compile("|".join(fnmatch.translate(glob) for glob in patterns))


def should_read(path: str, size: int, head: bytes) -> bool:
    """Whether a file of this name, size and first bytes (8 are enough) can hold a readable
    secret: known credential files yes, empty files and binary formats no, anything else yes
    (a data file of an unknown format may well hold text)."""
    if size == 0:
        return False
    if _globs(_CREDENTIAL_FILES).match("/" + path.lstrip("/")):
        return True
    base = posixpath.basename(path)
    if base in _BINARY_NAMES or base.lower().endswith(_BINARY_SUFFIXES):
        return False
    return not head.startswith(_BINARY_MAGIC)


@cache
def _compiled(rule: SecretRule) -> re.Pattern[bytes]:
    return re.compile(rule.pattern, rule.flags)


def _loosened(pattern: bytes) -> bytes:
    """`pattern` with its counted repeats open-ended (`{m,n}` and `{m}` as `{m,}`): it matches
    wherever `pattern` does, and Hyperscan compiles it in a third of the time."""
    return re.sub(rb"(?<!\\)\{(\d+)(?:,\d*)?\}", rb"{\1,}", pattern)


class _Prefilter:
    """The content rules as one Hyperscan database: which rules can match a file's bytes."""

    def __init__(self, rules: Sequence[SecretRule]) -> None:
        self._database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        flags = [
            hyperscan.HS_FLAG_PREFILTER
            | hyperscan.HS_FLAG_SINGLEMATCH
            | (hyperscan.HS_FLAG_CASELESS if rule.flags & re.IGNORECASE else 0)
            | (hyperscan.HS_FLAG_MULTILINE if rule.flags & re.MULTILINE else 0)
            for rule in rules  # re.VERBOSE: no rule has a space or comment it would drop
        ]
        self._database.compile(
            expressions=[_loosened(rule.prefilter or rule.pattern) for rule in rules],
            ids=list(range(len(rules))),
            elements=len(rules),
            flags=flags,
        )
        self._local = threading.local()  # scratch space is per thread

    def candidates(self, content: bytes) -> list[int]:
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = hyperscan.Scratch(self._database)
        hits: list[int] = []

        def on_match(rule: int, start: int, end: int, flags: int, context: Any) -> None:
            hits.append(rule)

        self._database.scan(content, match_event_handler=on_match, scratch=scratch)
        return sorted(hits)


@cache
def _prefilter() -> _Prefilter | None:
    if hyperscan is None:
        return None
    return _Prefilter(CONTENT_RULES)


def _candidate_rules(content: bytes, use_prefilter: bool) -> Iterable[SecretRule]:
    prefilter = _prefilter() if use_prefilter else None
    if prefilter is None:
        return CONTENT_RULES
    return [CONTENT_RULES[index] for index in prefilter.candidates(content)]


def find_secrets(path: str, content: bytes, *, use_prefilter: bool = True) -> list[tuple[str, str]]:
    """(kind, fingerprint) of each distinct secret in one file's content, none for a file that
    `should_read` says cannot hold one. A value found by two rules is reported once, under
    the first rule's kind. `use_prefilter=False` runs every rule (what tests compare with)."""
    if not should_read(path, len(content), content[:8]):
        return []
    rooted = "/" + path.lstrip("/")
    named = [rule for rule in NAMED_RULES if _globs(rule.files).match(rooted)]
    found: dict[str, str] = {}  # fingerprint -> kind
    for rule in (*named, *_candidate_rules(content, use_prefilter)):
        for match in _compiled(rule).finditer(content):
            value = match.group(rule.group)
            if not (_PLACEHOLDER.search(value) or _PLACEHOLDER_VALUE.fullmatch(value)):
                found.setdefault(fingerprint(value.decode("latin-1")), rule.kind)
    return [(kind, print_) for print_, kind in found.items()]
