"""No log line, at any level, shows a webhook's token: the real webhook path (auditor.notify,
requests and urllib3) against a local HTTP server that breaks every connection, so urllib3
retries and logs each retry with the request's URL."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from local_bundle import auditor, collect_local_bundle

pytestmark = pytest.mark.integration

TOKEN = "tok-3f9a1c77e2"
PATH_SECRET = "T0AB12/B0CD34/pathsecret9x"


@pytest.fixture
def breaking_server() -> Iterator[tuple[str, list[int]]]:
    """127.0.0.1:PORT that reads each request and closes the connection without an answer."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[int] = []

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                connection.recv(65536)
                accepted.append(1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted
    finally:
        listener.close()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return collect_local_bundle(tmp_path_factory.mktemp("redaction"))


@pytest.mark.parametrize("debug", [False, True])
def test_webhook_retries_never_log_its_token(bundle, tmp_path, breaking_server, debug):
    url, accepted = breaking_server
    db = str(tmp_path / "store.db")
    waivers = tmp_path / "waivers.yaml"
    waivers.write_text(yaml.safe_dump({"waivers": [
        {"id": "ALL", "check": "*", "justification": "baseline", "expires": "2099-01-01"}
    ]}))  # fmt: skip
    baseline = auditor("evaluate", str(bundle), "--allow-untrusted", "--db", db, "-q",
                       "--waivers", str(waivers),
                       cwd=tmp_path)  # fmt: skip
    assert baseline.returncode in (0, 1), baseline.stderr
    webhook = (
        f"http://user:pa55word@{url.removeprefix('http://')}/services/{PATH_SECRET}?token={TOKEN}"
    )
    flags = ["--debug"] if debug else []
    result = auditor(*flags, "evaluate", str(bundle), "--allow-untrusted", "--db", db, "-q",
                     "--webhook", webhook,
                     cwd=tmp_path)  # fmt: skip
    assert result.returncode in (0, 1), result.stderr
    assert len(accepted) == 3  # one try and two retries: urllib3 logged each retry
    assert f"auditor: warning: webhook {url} unreachable after 3 attempts" in result.stderr
    for secret in (TOKEN, PATH_SECRET, "pa55word", "pathsecret"):
        assert secret not in result.stderr
    if debug:  # the retries were logged, with what could be shown of the URL
        assert "Retrying" in result.stderr and "[REDACTED]" in result.stderr
    else:  # libraries stay quiet: the warnings are auditor's own (the bundle is unsigned)
        lines = result.stderr.strip().splitlines()
        assert lines[0].startswith("auditor: warning: UNTRUSTED bundle ")
        assert lines[1:] == [
            f"auditor: warning: webhook {url} unreachable after 3 attempts: ConnectionError"
        ]
