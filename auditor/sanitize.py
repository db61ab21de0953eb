"""Target text made safe to show: the one sanitiser every report format and the terminal use.

Unsafe characters are written out as text (`\\x1b`, `\\u202e`) so the reader sees that they
were there, and nothing from a target is obeyed by the viewer:

- C0 and C1 controls but tab, newline and carriage return (terminal escapes, NUL, BEL);
- Unicode format characters (category Cf) and the line and paragraph separators: the bidi
  embeddings, overrides and isolates U+202A-202E and U+2066-2069 (which reorder what a
  reader sees, "Trojan Source"), the zero-width characters U+200B-200F and U+2060-2064, the
  byte order mark U+FEFF, the soft hyphen, Arabic and Syriac marks, tag characters ...;
- lone surrogates (they cannot be encoded) and the non-characters U+FFFE and U+FFFF.

Formats add their own escaping after this (HTML autoescape, XML and JSON serialisers, CSV
formula neutralising, Markdown punctuation).
"""

from __future__ import annotations

import re

# Category Cf of Unicode 15.1 (tests/unit/test_sanitize.py checks it covers every Cf
# character Python's unicodedata knows), with U+2028 and U+2029 (Zl, Zp) inside 2028-202E.
_FORMAT = (
    "\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f"
    "\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f"
)
_UNSAFE = re.compile(rf"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff{_FORMAT}]")
_SPACE = re.compile(r"\s+")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def visible(text: str) -> str:
    """`text` with unsafe characters written as `\\x1b` / `\\u202e`: a terminal escape or a
    bidi override from a target is shown to the reader, not obeyed, and XML and HTML stay
    well formed. Tab, newline and carriage return are kept."""
    return _UNSAFE.sub(_escape, text)


def one_line(text: str, limit: int | None = None) -> str:
    """`visible(text)` on one line with whitespace collapsed, cut to `limit` characters."""
    single = _SPACE.sub(" ", visible(text)).strip()
    if limit is not None and len(single) > limit:
        return single[: limit - 1] + "…"
    return single


def plain(text: str, limit: int | None = None) -> str:
    """Target text for a terminal or a plain-text table cell: one line, nothing unsafe."""
    return one_line(text, limit)
