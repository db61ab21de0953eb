"""The one sanitiser: controls and invisible formatting characters are shown, not obeyed."""

from __future__ import annotations

import sys
import unicodedata

import pytest

from auditor.sanitize import one_line, plain, visible


def test_every_format_character_this_python_knows_is_made_visible():
    """The character class is written out (no table built at start-up); this keeps it honest
    against the Unicode database of the Python running the tests."""
    missed = [
        f"U+{code:04X}"
        for code in range(sys.maxunicode + 1)
        if unicodedata.category(chr(code)) in ("Cf", "Zl", "Zp", "Cc")
        and chr(code) not in "\t\n\r"
        and visible(chr(code)) == chr(code)
    ]
    assert missed == []


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("admin\u202e.txt.exe", "admin\\u202e.txt.exe"),  # right-to-left override
        ("a\u2066b\u2069c", "a\\u2066b\\u2069c"),  # isolates
        ("zero\u200bwidth\u200d", "zero\\u200bwidth\\u200d"),
        ("\ufeffbom", "\\ufeffbom"),
        ("tag\U000e0041", "tag\\U000e0041"),
        ("\x1b[31mred\x00", "\\x1b[31mred\\x00"),
        ("caf\u00e9 \u65e5\u672c \U0001f600", "caf\u00e9 \u65e5\u672c \U0001f600"),  # letters stay
    ],
)
def test_visible(raw, shown):
    assert visible(raw) == shown


def test_one_line_and_plain():
    assert one_line("a\n b\u2028c\t d", 100) == "a b\\u2028c d"
    assert one_line("x" * 10, 5) == "xxxx…"
    assert plain("web\u202e1\nok") == "web\\u202e1 ok"
