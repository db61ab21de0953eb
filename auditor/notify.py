"""Regression notices: a JSON POST to a webhook when a run is worse than the previous one.

A regression is a lower overall score than the previous complete run of the same targets, or
a critical check failing that did not fail then. The POST has a timeout and is retried on
connection errors and 429/5xx answers with back-off; a webhook that stays down costs a
warning, never the run. The webhook URL often holds a token: messages show its host only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from auditor import __version__, logs
from auditor.drift import compare
from auditor.errors import AuditorError

TIMEOUT = 10.0  # seconds per attempt
ATTEMPTS = 3
BACKOFF = 0.5  # seconds, doubled after each failed attempt
_MAX_LISTED = 50


class NotifyError(AuditorError):
    """The webhook could not be told."""


def regression(
    previous: Mapping[str, Any] | None, current: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The notice for `current` if it regressed against `previous`, else None."""
    if previous is None:
        return None
    diff = compare(previous, current)
    reasons = []
    delta = diff["score"]["delta"]
    if delta is not None and delta < 0:
        reasons.append("score_drop")
    critical = [e for e in diff["new_failures"] if e["severity"] == "critical"]
    if critical:
        reasons.append("new_critical_failures")
    if not reasons:
        return None
    return {
        "event": "auditor.regression",
        "reasons": reasons,
        "tool_version": __version__,
        "run": diff["b"],
        "previous_run": diff["a"],
        "targets": [t["name"] for t in current["targets"]],
        "score": {
            "previous": diff["score"]["a"],
            "current": diff["score"]["b"],
            "delta": delta,
        },
        "coverage": {
            "previous": diff["score"]["coverage_a"],
            "current": diff["score"]["coverage_b"],
            "delta": diff["score"]["coverage_delta"],
        },
        "new_critical_failures": critical[:_MAX_LISTED],
        "new_failures": diff["counts"]["new_failures"],
        "fixed": diff["counts"]["fixed"],
    }


def where(url: str) -> str:
    """scheme://host[:port] of a URL: what messages may show of it."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}" + (f":{parts.port}" if parts.port else "")


def hide_in_logs(url: str) -> None:
    """Keep the URL's path (a Slack or Teams webhook's path is its token) and query out of
    every log line, urllib3's retry warnings and debug lines included."""
    parts = urlsplit(url)
    if parts.path.strip("/"):
        logs.hide(parts.path)
    if parts.query:
        logs.hide(parts.query)


def post(url: str, payload: Mapping[str, Any], *, timeout: float = TIMEOUT) -> None:
    """POST `payload` as JSON, retrying transient failures; NotifyError when it never lands."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise NotifyError(f"webhook URL must be http:// or https://, not {where(url)}")
    hide_in_logs(url)
    retry = Retry(
        total=ATTEMPTS - 1,
        backoff_factor=BACKOFF,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"POST"}),
        raise_on_status=False,
    )
    with requests.Session() as session:
        session.mount("http://", HTTPAdapter(max_retries=retry))
        session.mount("https://", HTTPAdapter(max_retries=retry))
        try:
            response = session.post(
                url,
                json=payload,
                timeout=timeout,
                headers={"User-Agent": f"auditor/{__version__}"},
            )
        except requests.RequestException as exc:
            raise NotifyError(
                f"webhook {where(url)} unreachable after {ATTEMPTS} attempts: {type(exc).__name__}"
            ) from exc
    if response.status_code >= 300:
        raise NotifyError(f"webhook {where(url)} answered HTTP {response.status_code}")
