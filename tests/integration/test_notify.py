"""Regression webhook and Prometheus exports against real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml
from local_bundle import collect_local_bundle
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.integration


@dataclass
class Received:
    method: str
    path: str
    body: bytes
    headers: dict[str, str]


@dataclass
class HttpServer:
    """What a test HTTP server got, and the statuses it answers with (then 200)."""

    url: str
    statuses: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)


@pytest.fixture
def http_server() -> Iterator[HttpServer]:
    state = HttpServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            state.received.append(
                Received(self.command, self.path, self.rfile.read(length), dict(self.headers))
            )
            status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_PUT = _handle

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return collect_local_bundle(tmp_path_factory.mktemp("notify"))


def waive_everything(tmp_path):
    path = tmp_path / "waivers.yaml"
    path.write_text(yaml.safe_dump({"waivers": [
        {"id": "ALL", "check": "*", "justification": "baseline", "expires": "2099-01-01"}
    ]}))  # fmt: skip
    return path


def evaluate(auditor_cli, bundle, db, *args):
    result = auditor_cli(
        "evaluate", str(bundle), "--allow-untrusted", "--db", str(db), "-q", "-r", "json:-", *args
    )
    assert result.code in (0, 1), result.err
    return result, json.loads(result.out)


def test_a_score_drop_notifies_the_webhook_with_retries(auditor_cli, bundle, tmp_path, http_server):
    db = tmp_path / "store.db"
    _, baseline = evaluate(auditor_cli, bundle, db, "--waivers", str(waive_everything(tmp_path)))
    http_server.statuses = [503]  # the first attempt fails: the notice must still arrive
    webhook = f"{http_server.url}/hooks/T0/secret-token"
    result, current = evaluate(auditor_cli, bundle, db, "--webhook", webhook)
    assert [r.method for r in http_server.received] == ["POST", "POST"]
    notice = json.loads(http_server.received[-1].body)
    assert http_server.received[-1].headers["Content-Type"] == "application/json"
    assert notice["event"] == "auditor.regression"
    assert notice["reasons"] == ["score_drop"]
    assert notice["run"]["id"] == current["run"]["id"]
    assert notice["previous_run"]["id"] == baseline["run"]["id"]
    assert notice["score"]["delta"] < 0
    assert notice["score"]["current"] == current["score"]["overall"]["value"]
    assert "secret-token" not in result.err
    # the same result again is no regression: nothing is sent
    evaluate(auditor_cli, bundle, db, "--webhook", webhook)
    assert len(http_server.received) == 2


def test_a_dead_webhook_costs_a_warning_not_the_run(auditor_cli, bundle, tmp_path, http_server):
    db = tmp_path / "store.db"
    evaluate(auditor_cli, bundle, db, "--waivers", str(waive_everything(tmp_path)))
    http_server.statuses = [500, 500, 500]
    webhook = f"{http_server.url}/hook?token=secret-token"
    result, _ = evaluate(auditor_cli, bundle, db, "--webhook", webhook)
    assert len(http_server.received) == 3  # one try and two retries
    warning = f"auditor: warning: webhook {http_server.url} answered HTTP 500"
    assert warning in result.err
    assert "secret-token" not in result.err


def test_metrics_go_to_the_pushgateway_and_the_textfile(auditor_cli, bundle, tmp_path, http_server):
    textfile = tmp_path / "node-exporter" / "auditor.prom"
    result, document = evaluate(
        auditor_cli, bundle, tmp_path / "store.db", "--pushgateway", http_server.url,
        "--pushgateway-job", "nightly", "--prometheus-file", str(textfile),
    )  # fmt: skip
    (push,) = http_server.received
    assert (push.method, push.path) == ("PUT", "/metrics/job/nightly")
    for text in (push.body.decode(), textfile.read_text()):
        values = {
            sample.name: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }
        assert values["auditor_run_score"] == document["score"]["overall"]["value"]
        assert values["auditor_run_coverage_percent"] == document["score"]["overall"]["coverage"]


def test_an_unreachable_pushgateway_is_a_warning(auditor_cli, bundle, tmp_path, closed_port):
    result, _ = evaluate(
        auditor_cli,
        bundle,
        tmp_path / "store.db",
        "--pushgateway",
        f"http://127.0.0.1:{closed_port}",
    )
    assert "auditor: warning: cannot push metrics to the Pushgateway" in result.err
