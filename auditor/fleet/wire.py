"""What crosses the broker, as JSON: an audit task going out, a judged target coming back.

A task carries the target's URL and the settings TargetSpec declares as travelling (user,
port, sudo, timeouts) and never credentials or trust settings (keys, known_hosts, TLS files,
kubeconfigs, --accept-new-host-keys): a worker uses its own, as an Ansible control node
does. It names the profile, overlays and variables the run judges with, and their digest,
which the worker checks against its own loading of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from auditor.config import TargetSpec, connection_settings
from auditor.document import result_dict, target_dict
from auditor.engine import Judged
from auditor.model import Fact, Result, Severity, Status, Subject, TargetKind, TargetRecord


@dataclass(frozen=True)
class ProfileRequest:
    """The judgement a run asks for: what to load, the variables in force, their digest."""

    name: str
    overlays: tuple[str, ...]
    variables: Mapping[str, Any]  # the run's --var values (inventory vars travel per target)
    digest: str  # document.profile_digest of the loaded profile with those variables


def task_payload(run_id: str, spec: TargetSpec, profile: ProfileRequest) -> dict[str, Any]:
    """The JSON body of one audit task."""
    travelling = {
        name: getattr(spec, name) for name, setting, _ in connection_settings() if setting.travels
    }
    return {
        "run_id": run_id,
        "target": {"url": spec.url, "name": spec.display_name, **travelling},
        "target_variables": dict(spec.variables),
        "profile": {**asdict(profile), "overlays": list(profile.overlays)},
    }


def spec_from_payload(payload: Mapping[str, Any], local: TargetSpec) -> TargetSpec:
    """The target to audit: the task's URL and travelling settings over the worker's own
    credentials and trust settings (`local`)."""
    target = payload["target"]
    travelling = {name for name, setting, _ in connection_settings() if setting.travels}
    given = {k: v for k, v in target.items() if k in travelling and v is not None}
    return replace(
        local,
        url=str(target["url"]),
        name=str(target["name"]),
        variables=dict(payload.get("target_variables") or {}),
        **given,
    )


def profile_request(payload: Mapping[str, Any]) -> ProfileRequest:
    profile = payload["profile"]
    return ProfileRequest(
        name=str(profile["name"]),
        overlays=tuple(str(o) for o in profile["overlays"]),
        variables=dict(profile["variables"]),
        digest=str(profile["digest"]),
    )


def judged_to_json(judged: Judged, worker: str) -> dict[str, Any]:
    """A judged target as a worker sends it back."""
    record = judged.record
    return {
        "worker": worker,
        "record": {**target_dict(record), "facts": [asdict(fact) for fact in record.facts]},
        "results": [result_dict(result) for result in judged.results],
        "variables": dict(judged.variables),
    }


def judged_from_json(data: Mapping[str, Any]) -> Judged:
    """The coordinator's side of `judged_to_json`."""
    raw = data["record"]
    record = TargetRecord(
        name=raw["name"],
        url=raw["url"],
        kind=TargetKind(raw["kind"]),
        started_at=raw["started_at"],
        finished_at=raw["finished_at"],
        error=raw["error"],
        facts=tuple(Fact(**fact) for fact in raw["facts"]),
    )
    results = [_result(item) for item in data["results"]]
    return Judged(record, results, dict(data["variables"]), str(data["worker"]))


def _result(item: Mapping[str, Any]) -> Result:
    subject = item["subject"]
    return Result(
        check_id=item["check_id"],
        control_id=item["control_id"],
        title=item["title"],
        severity=Severity(item["severity"]),
        target=item["target"],
        subject=Subject(subject["kind"], subject["name"], subject["id"], subject["location"]),
        status=Status(item["status"]),
        message=item["message"],
        observed=dict(item["observed"]),
        expected=item["expected"],
        evidence=tuple(item["evidence"]),
        remediation=item["remediation"],
        waiver=item["waiver"],
        attestation=item["attestation"],
    )


def error_judged(
    payload: Mapping[str, Any], reason: str, results: Sequence[Result] = ()
) -> dict[str, Any]:
    """What a worker sends back for a target it did not audit (refused, wrong profile)."""
    target = payload["target"]
    record = TargetRecord(
        name=str(target["name"]),
        url=str(target["url"]),
        kind=TargetKind.HOST,
        started_at="",
        finished_at="",
        error=reason,
    )
    return judged_to_json(Judged(record, list(results), {}), worker="")
