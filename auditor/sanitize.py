"""Target text made safe for plain-text outputs (terminal, CSV, Markdown)."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def plain(text: str, limit: int | None = None) -> str:
    """One line without control characters (no terminal escape sequences from a target)."""
    single = _CONTROL.sub("?", text.replace("\n", " ").replace("\r", " ").replace("\t", " "))
    if limit is not None and len(single) > limit:
        return single[: limit - 1] + "…"
    return single
