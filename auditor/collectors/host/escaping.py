"""How host script output is escaped on the host and read back here: one filter, one splitter,
one decoder.

Every byte the host script prints passes through `ESCAPE_AWK`, the last stage of its pipeline:
control characters (C0 but tab and newline, DEL), every byte of 0x80 and above (so the C1
controls, U+0085, U+2028, U+2029 and any other non-ASCII text) and the backslash itself become
`\\ooo` (three octal digits of the byte). What reaches auditor is printable ASCII, tab and
newline, so a line ends only where the host printed a newline, after which the sections' tags
stand (`split_lines`; a file name holding a newline goes on in a `+:` line). A parser splits a
line into its fields on the separators its source uses (a space, a colon) and only then
decodes the fields it keeps (`unescape`): no text on the host can make a line, or a field,
that it did not print.
"""

from __future__ import annotations

import re

__all__ = ["ESCAPE_AWK", "split_lines", "unescape"]

# POSIX awk (mawk, gawk, busybox) run with LC_ALL=C, so that it sees bytes. Most lines hold
# nothing to escape and are printed as they are; a line that does is rebuilt from its runs of
# plain text and the escapes of the bytes between them. The table holds every byte but NUL,
# which awk cannot carry and the shell drops.
ESCAPE_AWK = r"""BEGIN {
  for (i = 1; i < 256; i++)
    if ((i < 32 && i != 9) || i == 92 || i >= 127) e[sprintf("%c", i)] = sprintf("\\%03o", i)
}
/[^\t -~]/ || index($0, "\\") {
  s = $0
  o = ""
  while (match(s, /[^\t -~]|\\/)) {
    o = o substr(s, 1, RSTART - 1) e[substr(s, RSTART, 1)]
    s = substr(s, RSTART + 1)
  }
  print o s
  next
}
{ print }"""

_ESCAPE = re.compile(r"\\([0-3][0-7]{2})")
# runs of escapes decoded together, so that a multi-byte UTF-8 character becomes one character
_ESCAPES = re.compile(r"(?:\\[0-3][0-7]{2})+")


def split_lines(raw: str) -> list[str]:
    """The lines of escaped host output, split on newline only (never on the other characters
    `str.splitlines` breaks at: those arrive escaped, and must not end a line). A `+:` line
    continues the one before it: the script printed a value holding a newline (a file name),
    which comes back escaped as `\\012`."""
    lines = raw.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if "\n+:" not in raw:
        return lines
    joined: list[str] = []
    for line in lines:
        if line.startswith("+:") and joined:
            joined[-1] += "\\012" + line[2:]
        else:
            joined.append(line)
    return joined


def unescape(text: str) -> str:
    """A field of escaped host output as the host wrote it: each `\\ooo` back to its byte,
    the bytes read as UTF-8 (a byte that is not UTF-8 is shown as `\\xNN`)."""
    if "\\" not in text:
        return text
    return _ESCAPES.sub(_decode_run, text)


def _decode_run(match: re.Match[str]) -> str:
    data = bytes(int(code, 8) for code in _ESCAPE.findall(match.group(0)))
    return data.decode("utf-8", "backslashreplace")
