"""What crosses the broker, as JSON: an audit task going out, a judged target coming back.

A task carries the target's URL and the settings TargetSpec declares as travelling (user,
port, sudo, timeouts) and never credentials or trust settings (keys, known_hosts, TLS files,
kubeconfigs, --accept-new-host-keys): a worker uses its own, as an Ansible control node
does. It names the profile, overlays and variables the run judges with, and their digest,
which the worker checks against its own loading of them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from auditor import judging
from auditor.config import TargetSpec, connection_settings
from auditor.document import target_dict
from auditor.engine import Judged
from auditor.facts import canonical_json
from auditor.model import Fact, FactJson, Result, Status, Subject, TargetKind, TargetRecord
from auditor.profiles import CompiledCheck, LoadedProfile


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
    """A judged target as a worker sends it back. A result travels as what the judgement
    found (check, subject, status, message, observed values, which of the record's facts it
    rests on): what its check says of itself (title, control, severity, expected,
    remediation) the coordinator takes from its own copy of the profile, the same one, by
    digest. A host's answer is a third of the size it would be with every result whole. A
    fact's data travels as its canonical JSON text, which the coordinator keeps as it is
    (FactJson) after checking it against the fact's sha256."""
    record = judged.record
    fact_at = {fact.sha256: index for index, fact in enumerate(record.facts)}
    return {
        "worker": worker,
        "record": {**target_dict(record), "facts": [_fact_row(fact) for fact in record.facts]},
        "results": [_result_row(result, fact_at) for result in judged.results],
        "variables": dict(judged.variables),
    }


def _fact_row(fact: Fact) -> dict[str, Any]:
    row = {field.name: getattr(fact, field.name) for field in fields(Fact)}
    row["data"] = None if fact.data is None else canonical_json(fact.data)
    return row


def _fact(row: Mapping[str, Any]) -> Fact:
    """A fact as the coordinator keeps it: its data the JSON text it was sent as, which must
    be what the fact's sha256 was taken over."""
    text = row["data"]
    fact = Fact(**{**row, "data": None if text is None else FactJson(text)})
    checked = text is None or fact.error is not None
    if not checked and hashlib.sha256(text.encode("utf-8")).hexdigest() != fact.sha256:
        raise BadAnswer(f"the data of fact {fact.name!r} does not match its sha256")
    return fact


def _result_row(result: Result, fact_at: Mapping[str, int]) -> list[Any]:
    subject = result.subject
    row: list[Any] = [
        result.check_id,
        [subject.kind, subject.name, subject.id, subject.location],
        str(result.status),
        result.message,
        result.observed,
        [fact_at.get(sha, sha) for sha in result.evidence],
    ]
    if result.waiver is not None or result.attestation is not None:
        row += [result.waiver, result.attestation]
    return row


class BadAnswer(ValueError):
    """An answer that does not fit the run: a result of a check the run's profile does not
    have, or fact data that is not what its hash was taken over."""


def judged_from_json(data: Mapping[str, Any], checks: Mapping[str, CompiledCheck]) -> Judged:
    """The coordinator's side of `judged_to_json`, with `checks` (by id) of the run's
    profile. Raises BadAnswer for an answer that does not fit the run."""
    raw = data["record"]
    facts = tuple(_fact(fact) for fact in raw["facts"])
    record = TargetRecord(
        name=raw["name"],
        url=raw["url"],
        kind=TargetKind(raw["kind"]),
        started_at=raw["started_at"],
        finished_at=raw["finished_at"],
        error=raw["error"],
        facts=facts,
    )
    shas = [fact.sha256 for fact in facts]
    # one Subject per subject and one evidence tuple per list of facts, as the engine has
    subjects: dict[tuple[Any, ...], Subject] = {}
    evidence: dict[tuple[Any, ...], tuple[str, ...]] = {}
    results = []
    for row in data["results"]:
        check = checks.get(row[0])
        if check is None:
            raise BadAnswer(f"the answer has a result of check {row[0]!r}, not in the profile")
        key = tuple(row[1])
        subject = subjects.get(key) or subjects.setdefault(key, Subject(*key))
        refs = tuple(row[5])
        hashes = evidence.get(refs)
        if hashes is None:
            hashes = evidence[refs] = tuple(shas[e] if isinstance(e, int) else e for e in refs)
        made = judging.result(
            check,
            record.name,
            subject,
            Status(row[2]),
            row[3],
            observed=row[4],
            evidence=hashes,
        )
        if len(row) > 6:
            made.waiver, made.attestation = row[6], row[7]
        results.append(made)
    return Judged(record, results, dict(data["variables"]), str(data["worker"]))


def checks_by_id(profile: LoadedProfile) -> dict[str, CompiledCheck]:
    return {check.id: check for check in profile.checks}


def error_judged(payload: Mapping[str, Any], reason: str) -> dict[str, Any]:
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
    return judged_to_json(Judged(record, [], {}), worker="")
