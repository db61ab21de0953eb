"""Logging for the command line: quiet libraries, warnings as log records, secrets never shown.

Libraries log what auditor already reports in its own words (paramiko a traceback for every
failed handshake, the CEL core a line for every failed helper call, urllib3 a line for
every retry): their loggers are silent unless `--debug`. Python warnings go through logging
too, and every record auditor's handler writes, at any level, passes `RedactingFilter`: URL
userinfo, query strings and fragments, values registered with `hide`, and whatever
redaction hides in evidence (auditor.redact) never reach the terminal.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from urllib.parse import urlsplit

from auditor.redact import redact_text

# Loggers of libraries whose failures auditor reports itself, as errors of a target or a run.
QUIET_LIBRARIES = ("paramiko", "cel", "urllib3", "requests", "docker", "kubernetes", "py.warnings")
HIDDEN = "[REDACTED]"

# A URL with a scheme, up to the first character that cannot be in one.
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
# A query string after a path (urllib3 logs request paths alone: "POST /hook?token=x").
_QUERY = re.compile(r"(?<=[\w/.~%-])\?(?=[^\s'\"<>])[^\s'\"<>#]*")

_hidden: set[str] = set()
_hidden_lock = threading.Lock()


def hide(value: str) -> None:
    """Never show `value` in a log record (a webhook URL's path, which holds its token)."""
    if len(value) >= 4:  # shorter values would blank out ordinary words
        with _hidden_lock:
            _hidden.add(value)


def redact_message(text: str) -> str:
    """`text` with URL credentials, query strings, hidden values and secrets replaced."""
    # URLs whole, and evidence redaction on the text between them: it would put a marker with
    # a space inside a URL, and leaves alone any text that already holds a marker
    pieces, last = [], 0
    for match in _URL.finditer(text):
        pieces += [redact_text("", text[last : match.start()]), _redact_url(match.group(0))]
        last = match.end()
    text = "".join([*pieces, redact_text("", text[last:])])
    text = _QUERY.sub("?" + HIDDEN, text)
    with _hidden_lock:  # another thread may be adding one
        hidden = sorted(_hidden, key=len, reverse=True)
    for value in hidden:
        text = text.replace(value, HIDDEN)
    return text


def _redact_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # not a URL after all (an IPv6 literal gone wrong, a bad port)
        return url.split("?")[0].split("#")[0]
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    shown = f"{parts.scheme}://" + (f"{HIDDEN}@" if "@" in parts.netloc else "") + host
    shown += f":{port}" if port is not None else ""
    shown += parts.path
    shown += f"?{HIDDEN}" if parts.query or url.endswith("?") else ""
    return shown + (f"#{HIDDEN}" if parts.fragment else "")


class ThirdPartyAtDebug(logging.Filter):
    """Libraries' warnings (WeasyPrint's CSS notes on every PDF, urllib3's, Python warnings)
    are debug detail, shown with --debug only: `-q` prints nothing on success. Their errors,
    and everything auditor logs, keep their level."""

    def __init__(self, debug: bool) -> None:
        super().__init__()
        self.debug = debug

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.partition(".")[0] == "auditor" or record.levelno >= logging.ERROR:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return self.debug


class RedactingFilter(logging.Filter):
    """Rewrites each record's message (and traceback text) through `redact_message`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_message(record.exc_text)
        record.msg, record.args = redact_message(message), None
        return True


def configure(debug: bool) -> None:
    """Log to stderr through a redacting handler: everything with --debug, else warnings from
    auditor alone."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(ThirdPartyAtDebug(debug))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_auditor", False)]:
        root.removeHandler(old)  # configured again (tests run many commands in one process)
    handler._auditor = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    logging.captureWarnings(True)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.NOTSET if debug else logging.CRITICAL + 1)
