"""Log records are redacted at every level; libraries are quiet unless --debug."""

from __future__ import annotations

import io
import logging
import warnings

import pytest

from auditor import logs


@pytest.mark.parametrize(
    ("message", "hidden", "kept"),
    [
        (
            "Retrying (Retry(total=2)) after connection broken by 'X': /hook?token=s3cr3t",
            ["s3cr3t"],
            ["Retrying (Retry(total=2))", "/hook?[REDACTED]"],
        ),
        (
            'http://127.0.0.1:8080 "POST /hooks/a?token=s3cr3t&x=1 HTTP/1.1" 500 0',
            ["s3cr3t", "x=1"],
            ["http://127.0.0.1:8080", "POST /hooks/a?[REDACTED] HTTP/1.1"],
        ),
        (
            "GET https://bob:pa55@example.com:8443/a/b?q=1#frag failed; is it up? no",
            ["bob", "pa55", "q=1", "frag"],
            ["https://[REDACTED]@example.com:8443/a/b?[REDACTED]#[REDACTED]", "is it up? no"],
        ),
        (
            "argv: app --db-password=hunter22 Authorization: Bearer abcdefghijklmnop",
            ["hunter22", "abcdefghijklmnop"],
            ["--db-password=[REDACTED fp="],
        ),
    ],
)
def test_messages_lose_what_redaction_hides(message, hidden, kept):
    redacted = logs.redact_message(message)
    for secret in hidden:
        assert secret not in redacted
    for text in kept:
        assert text in redacted


def test_a_hidden_value_is_hidden_wherever_it_appears():
    logs.hide("/services/T00/B00/unit-test-secret-path")
    redacted = logs.redact_message("POST /services/T00/B00/unit-test-secret-path HTTP/1.1")
    assert redacted == "POST [REDACTED] HTTP/1.1"


@pytest.fixture
def configured():
    root = logging.getLogger()
    saved = (root.level, list(root.handlers), logging.getLogger("paramiko").level)
    yield
    for handler in [h for h in root.handlers if h not in saved[1]]:
        root.removeHandler(handler)
    root.setLevel(saved[0])
    for name in logs.QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.NOTSET)
    logging.captureWarnings(False)


def handler_stream() -> io.StringIO:
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "_auditor", False))
    stream = io.StringIO()
    handler.setStream(stream)  # type: ignore[attr-defined]
    return stream


@pytest.mark.parametrize("debug", [False, True])
def test_libraries_and_warnings_are_quiet_unless_debug(configured, debug):
    logs.configure(debug)
    stream = handler_stream()
    logging.getLogger("paramiko.transport").error("Exception (client): Error reading banner")
    logging.getLogger("urllib3.connectionpool").warning("Retrying: /hook?token=abc123")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("some library is deprecated", DeprecationWarning, stacklevel=1)
    logging.getLogger("auditor.engine").warning("auditor's own: https://h/x?k=v")
    text = stream.getvalue()
    assert "auditor's own: https://h/x?[REDACTED]" in text
    assert ("Error reading banner" in text) is debug
    assert ("deprecated" in text) is debug
    assert "abc123" not in text
    assert ("Retrying: /hook?[REDACTED]" in text) is debug
