"""Scores for monitoring: Prometheus text exposition, as a file or pushed to a Pushgateway.

The file is meant for node-exporter's textfile collector (`--collector.textfile.directory`):
it is written to a temporary file and renamed, so the collector never reads half of it.
Every sample comes from the results document, so the numbers are the report's numbers.

    auditor_run_score{profile="nist-800-190"} 73.4
    auditor_target_score{target="web1",kind="host"} 81.2
    auditor_target_results{target="web1",status="fail",severity="high"} 3
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import push_to_gateway, write_to_textfile

from auditor.errors import AuditorError

PUSH_TIMEOUT = 10.0  # seconds for the Pushgateway to answer


class MetricsError(AuditorError):
    """Metrics could not be written or pushed."""


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def registry_for(document: Mapping[str, Any]) -> CollectorRegistry:
    """A registry holding the samples of one run (a new one each time: no global state)."""
    registry = CollectorRegistry(auto_describe=True)
    run, score = document["run"], document["score"]
    profile = run["profile"]["id"]

    def gauge(name: str, text: str, labels: tuple[str, ...]) -> Gauge:
        return Gauge(name, text, ("profile", *labels), registry=registry)

    # No run id label: one new time series per run would grow Prometheus without bound.
    info = gauge("auditor_run_info", "The versions behind the last run (value 1).",
                 ("profile_version", "tool_version"))  # fmt: skip
    info.labels(profile, run["profile"]["version"], run["tool_version"]).set(1)
    overall = score["overall"]
    if overall["value"] is not None:
        gauge("auditor_run_score", "Overall score 0-100 of the last run.", ()).labels(profile).set(
            overall["value"]
        )
    if overall["coverage"] is not None:
        gauge(
            "auditor_run_coverage_percent",
            "Weighted share of the last run's checks that could be evaluated.",
            (),
        ).labels(profile).set(overall["coverage"])
    gauge(
        "auditor_run_complete", "1 when the last run audited every target it planned.", ()
    ).labels(profile).set(1 if run["complete"] else 0)
    gauge("auditor_run_timestamp_seconds", "When the last run finished (Unix time).", ()).labels(
        profile
    ).set(_seconds(run["finished_at"]))
    gauge("auditor_run_duration_seconds", "How long the last run took.", ()).labels(profile).set(
        max(0.0, _seconds(run["finished_at"]) - _seconds(run["started_at"]))
    )

    overall_counts: Counter[tuple[str, str]] = Counter()
    per_target: Counter[tuple[str, str, str]] = Counter()
    for result in document["results"]:
        overall_counts[(result["status"], result["severity"])] += 1
        per_target[(result["target"], result["status"], result["severity"])] += 1
    for down in document.get("not_audited", []):  # its checks, folded out of `results`
        for severity, count in down["checks_by_severity"].items():
            overall_counts[("error", severity)] += count
            per_target[(down["target"], "error", severity)] += count
    results = gauge("auditor_run_results", "Results of the last run by status and severity.",
                    ("status", "severity"))  # fmt: skip
    for (status, severity), count in sorted(overall_counts.items()):
        results.labels(profile, status, severity).set(count)

    target_score = gauge("auditor_target_score", "Score 0-100 of a target.", ("target", "kind"))
    target_cov = gauge("auditor_target_coverage_percent", "Coverage of a target.",
                       ("target", "kind"))  # fmt: skip
    target_up = gauge("auditor_target_up", "1 when the target could be audited, else 0.",
                      ("target", "kind"))  # fmt: skip
    for target in document["targets"]:
        name, kind = target["name"], target["kind"]
        scored = score["by_target"].get(name, {})
        if scored.get("value") is not None:
            target_score.labels(profile, name, kind).set(scored["value"])
        if scored.get("coverage") is not None:
            target_cov.labels(profile, name, kind).set(scored["coverage"])
        target_up.labels(profile, name, kind).set(0 if target["error"] else 1)
    target_results = gauge("auditor_target_results", "Results of a target by status and severity.",
                           ("target", "status", "severity"))  # fmt: skip
    for (name, status, severity), count in sorted(per_target.items()):
        target_results.labels(profile, name, status, severity).set(count)

    waivers = document.get("waivers")
    if waivers:
        state = gauge("auditor_waivers", "Waivers by state (applied, expiring, expired, ...).",
                      ("state",))  # fmt: skip
        for key in ("applied", "expiring", "expired", "not_started", "unmatched"):
            state.labels(profile, key).set(len(waivers.get(key, [])))
    return registry


def render(document: Mapping[str, Any]) -> str:
    """The run's samples in Prometheus text format."""
    return generate_latest(registry_for(document)).decode("utf-8")


def write_textfile(document: Mapping[str, Any], path: Path) -> None:
    """Write the samples for node-exporter's textfile collector, atomically."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(path), registry_for(document))
    except OSError as exc:
        raise MetricsError(f"cannot write metrics to {path}: {exc.strerror or exc}") from exc


def push(document: Mapping[str, Any], gateway: str, job: str = "auditor") -> None:
    """PUT the samples to a Pushgateway (replacing the job's previous ones)."""
    try:
        push_to_gateway(gateway, job=job, registry=registry_for(document), timeout=PUSH_TIMEOUT)
    except OSError as exc:  # urllib's URLError and HTTP errors, timeouts
        raise MetricsError(f"cannot push metrics to the Pushgateway: {exc}") from exc
