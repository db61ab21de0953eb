"""The host script's output escape (escaping.py), run through the real awk of this machine and
busybox's: what it prints is plain ASCII, it decodes back to what the host wrote, and no byte
sequence on the host can make a line the host script did not tag."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.collectors.host import parsers, sections
from auditor.collectors.host.escaping import ESCAPE_AWK, split_lines, unescape

AWKS = [["awk"], [shutil.which("busybox") or "busybox", "awk"]]
# every character str.splitlines() breaks at, and the other whitespace str.split() splits on
SEPARATORS = "\n\r\v\f\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2028\u2029\u3000"
# bytes a host may print: any but NUL (neither the shell nor awk can carry it)
HOST_BYTES = st.binary(max_size=200).map(lambda b: b.replace(b"\0", b""))
HOST_TEXT = st.text(
    alphabet=st.one_of(
        # what a host prints is bytes: text that encodes (no lone surrogates), NUL aside
        st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)),
        st.sampled_from(SEPARATORS),
    ),
    max_size=80,
)


def escaped(data: bytes, awk: list[str] = AWKS[0]) -> str:
    """`data` through the probe's escape, as the target's awk prints it."""
    done = subprocess.run(
        [*awk, ESCAPE_AWK], input=data, capture_output=True, check=True, env={"LC_ALL": "C"}
    )
    return done.stdout.decode("ascii")  # anything else would fail here


def _bytes_of(text: str) -> bytes:
    """The bytes an escaped line stands for (what `unescape` reads as UTF-8)."""
    raw = text.encode("ascii")
    return re.sub(rb"\\([0-3][0-7]{2})", lambda m: bytes([int(m.group(1), 8)]), raw)


def test_the_escape_program_fits_in_single_quotes() -> None:
    assert "'" not in ESCAPE_AWK  # script.py puts it in a single-quoted shell word


@pytest.mark.parametrize("awk", AWKS, ids=["awk", "busybox"])
def test_every_separator_and_control_is_escaped(awk: list[str]) -> None:
    line = "a\tb\\c" + SEPARATORS.replace("\n", "") + "\x01\x7f é"
    out = escaped(line.encode() + b"\n", awk)
    assert out == (
        "a\tb\\134c\\015\\013\\014\\034\\035\\036\\037\\302\\205\\302\\240\\341\\232\\200"
        "\\342\\200\\200\\342\\200\\250\\342\\200\\251\\343\\200\\200\\001\\177 \\303\\251\n"
    )
    assert split_lines(out) == [out[:-1]]
    assert unescape(out[:-1]) == line


@settings(max_examples=60, deadline=None)
@given(st.lists(HOST_BYTES, min_size=1, max_size=5))
def test_escaped_bytes_are_printable_ascii_and_decode_back(chunks: list[bytes]) -> None:
    data = b"".join(chunks)
    lines = data.split(b"\n")
    out = escaped(data)
    assert re.fullmatch(r"[\t\n -~]*", out)
    got = split_lines(out)
    expected = lines[:-1] if data.endswith(b"\n") or not data else lines
    assert [_bytes_of(line) for line in got] == expected


@settings(max_examples=60, deadline=None)
@given(st.lists(HOST_TEXT, max_size=6))
def test_text_round_trips_through_escape_and_unescape(lines: list[str]) -> None:
    data = "".join(line.replace("\n", "") + "\n" for line in lines)
    out = escaped(data.encode())
    assert [unescape(line) for line in split_lines(out)] == data.split("\n")[:-1]


@settings(max_examples=60, deadline=None)
@given(HOST_BYTES, HOST_BYTES)
def test_no_file_content_makes_a_line_of_its_own(first: bytes, second: bytes) -> None:
    """A configuration file read as the walks read it (`awk '{ print "L:" $0 }'`), framed by
    the walk's F: and E: lines: whatever it holds, every line of it stays an L: line, and the
    parsers see exactly the file's lines, in order."""
    content = first + b"\n" + second
    walk = subprocess.run(
        ["awk", '{ print "L:" $0 }'], input=content, capture_output=True, check=True
    ).stdout
    out = escaped(b"F:/etc/sudoers\n" + walk + b"E:/etc/sudoers\n")
    lines = content.split(b"\n")
    if content.endswith(b"\n"):  # the newline ends the last line; it does not start one
        lines.pop()
    tags = [tag for tag, _ in parsers._tagged(out)]
    assert tags == ["F", *["L"] * len(lines), "E"]
    values = [value for tag, value in parsers._tagged(out) if tag == "L"]
    assert [_bytes_of(v) for v in values] == lines


def test_a_backslash_escape_written_by_the_host_stays_text() -> None:
    r"""The host's own `\013` (four characters) is not a vertical tab once decoded."""
    out = escaped(b"path\\013x\n")
    assert out == "path\\134013x\n"
    assert unescape(out[:-1]) == "path\\013x"


def test_bytes_that_are_not_utf8_stay_visible() -> None:
    out = escaped(b"caf\xe9 \xff\n")
    assert unescape(out[:-1]) == "caf\\xe9 \\xff"


def test_a_continuation_line_joins_the_line_before_it_as_an_escaped_newline() -> None:
    """`__put` prints a file name holding newlines as a line and `+:` continuation lines."""
    assert split_lines("F:/etc/a\n+:E:b\n+:\nL:x\n") == ["F:/etc/a\\012E:b\\012", "L:x"]
    assert unescape("/etc/a\\012E:b\\012") == "/etc/a\nE:b\n"


def test_put_prints_a_name_with_newlines_as_continuation_lines() -> None:
    helpers = sections.HELPERS
    shell = f"NL='\n'\n{helpers}\n__put F: \"$1\"\n__put E: plain\n"
    done = subprocess.run(
        ["sh", "-c", shell, "sh", "/etc/a\nE:b\n"], capture_output=True, text=True, check=True
    )
    assert done.stdout == "F:/etc/a\n+:E:b\n+:\nE:plain\n"


@settings(max_examples=40, deadline=None)
@given(HOST_BYTES, HOST_BYTES)
def test_no_command_output_or_file_name_makes_a_line_of_its_own(out: bytes, name: bytes) -> None:
    """Command output tagged by `__tag` and a file name printed by `__put`, as the sections
    print them, then escaped: only the script's own tags come out, with the host's text."""
    shell = f'NL=\'\n\'\n{sections.HELPERS}\n__tag S: "$1"\n__put F: "$2"\necho E:end\n'
    done = subprocess.run(["sh", "-c", shell, "sh", out, name], capture_output=True, check=True)
    tagged = list(parsers._tagged(escaped(done.stdout)))
    # __tag leaves out empty lines, and the shell drops the output's trailing newlines
    lines = [line for line in out.rstrip(b"\n").split(b"\n") if line]
    assert [tag for tag, _ in tagged] == ["S"] * len(lines) + ["F", "E"]
    assert [_bytes_of(value) for _, value in tagged[:-2]] == lines
    assert _bytes_of(tagged[-2][1]) == name
