"""The canonical results document (JSON, schema `auditor-results/1`).

Every report format is rendered from this one document, so `auditor report results.json`
can produce any format later without touching a target. Evidence data is stored once per
sha256 under `evidence`; facts and results refer to it by hash.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO

import fastjsonschema
import orjson

from auditor.coverage import matrix
from auditor.errors import InputError
from auditor.evidence_spool import EvidenceSpool
from auditor.model import Fact, FactJson, Result, Run, Subject, TargetRecord, fact_data
from auditor.profiles import LoadedProfile
from auditor.regularfile import UnreadableFile, read_regular_file
from auditor.resources import results_schema_path
from auditor.scoring import FORMULA, Score, ScoreCard, score

SCHEMA = "auditor-results/1"


def build(
    run: Run, profile: LoadedProfile, *, evidence: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The document for a finished (or interrupted) run. Its `evidence` is the facts' data
    by sha256: `evidence` when given (the recorder's EvidenceSpool, whose facts hold no
    data), else taken from the facts."""
    section_of = {e.control.id: e.section.id for e in profile.controls}
    card = score(run.results, section_of)
    if evidence is None:
        evidence = {}
        for record in run.targets:
            for fact in record.facts:
                if fact.error is None:
                    evidence.setdefault(fact.sha256, fact.data)
    about = catalog(profile)
    return {
        "schema": SCHEMA,
        "run": {
            "id": run.id,
            "tool": "auditor",
            "tool_version": run.tool_version,
            "started_at": run.started_at,
            "finished_at": run.finished_at,
            "complete": run.complete,
            "profile": about["profile"],
        },
        "score": _scorecard(card),
        "formula": about["formula"],
        "sections": about["sections"],
        "controls": about["controls"],
        "coverage_matrix": about["coverage_matrix"],
        **fold_unaudited_document(
            [target_dict(record) for record in run.targets],
            result_dicts(run.results),
        ),
        "evidence": evidence,
    }


def fold_unaudited_document(
    targets: list[dict[str, Any]], results: list[dict[str, Any]]
) -> dict[str, Any]:
    """`targets`, `results` and `not_audited` of a document (see fold_unaudited)."""
    kept, not_audited = fold_unaudited(targets, results)
    return {"targets": targets, "results": kept, "not_audited": not_audited}


def fold_unaudited(
    targets: list[dict[str, Any]], results: Iterable[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(results, not_audited): a target that could not be audited at all (it has an `error`)
    leaves the results and appears once in not_audited, with the reason and the number of
    checks, by severity, that could not judge it; not once per check. The score is
    computed before the fold: those checks still lower coverage and count for --fail-on."""
    down = {t["name"]: t for t in targets if t["error"]}
    if not down:
        return list(results), []
    checks: dict[str, Counter[str]] = {name: Counter() for name in down}
    kept = []
    for result in results:
        if result["target"] in down:
            checks[result["target"]][result["severity"]] += 1
        else:
            kept.append(result)
    not_audited = [
        {
            "target": name,
            "kind": target["kind"],
            "reason": target["error"],
            "checks": sum(checks[name].values()),
            "checks_by_severity": dict(sorted(checks[name].items())),
        }
        for name, target in down.items()
    ]
    return kept, not_audited


def catalog(profile: LoadedProfile) -> dict[str, Any]:
    """What a document says of its profile: the same for every run of it (the store keeps it
    once)."""
    return {
        "profile": {
            "id": profile.id,
            "title": profile.title,
            "version": profile.version,
            "overlays": list(profile.overlays),
            "disabled_checks": list(profile.disabled),
        },
        "formula": FORMULA.strip(),
        "sections": [{"id": s.id, "title": s.title} for s in profile.sections],
        "controls": [_control(entry) for entry in profile.controls],
        "coverage_matrix": matrix(profile),
    }


def profile_digest(profile: LoadedProfile) -> str:
    """sha256 of what judges a run: the profile's catalog (every check's text, assertion and
    severity, after overlays) and its variables in force. Equal digests, equal judgement."""
    canonical = orjson.dumps(
        {"catalog": catalog(profile), "variables": profile.variables},
        default=str,
        option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
    )
    return hashlib.sha256(canonical).hexdigest()


def judged_with(
    profile: LoadedProfile, target_variables: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """How a run was judged: the profile, its digest, its overlays and the variables in force;
    for each target whose variables differ (inventory `vars`), the ones that differ."""
    overrides = {
        name: {k: v for k, v in variables.items() if profile.variables.get(k, _UNSET) != v}
        for name, variables in target_variables.items()
    }
    return {
        "profile": {"id": profile.id, "version": profile.version},
        "digest": f"sha256:{profile_digest(profile)}",
        "overlays": list(profile.overlays),
        "variables": dict(profile.variables),
        "target_variables": {name: o for name, o in overrides.items() if o},
    }


_UNSET = object()


def _score(value: Score) -> dict[str, Any]:
    return asdict(value)


def _scorecard(card: ScoreCard) -> dict[str, Any]:
    return {
        "overall": _score(card.overall),
        "by_target": {k: _score(v) for k, v in card.by_target.items()},
        "by_section": {k: _score(v) for k, v in card.by_section.items()},
        "by_control": {k: _score(v) for k, v in card.by_control.items()},
        "by_check": {k: _score(v) for k, v in card.by_check.items()},
        "by_severity": card.by_severity,
    }


def _control(entry: Any) -> dict[str, Any]:
    control = entry.control
    data: dict[str, Any] = control.model_dump(mode="json", by_alias=True, exclude={"checks"})
    data["section"] = entry.section.id
    data["checks"] = [
        check.model_dump(mode="json", by_alias=True, exclude={"assert_", "where"})
        | {"assert": check.assert_, "where": check.where}
        for check in control.checks
    ]
    return data


def fact_record(fact: Fact) -> dict[str, Any]:
    """A fact without its data (the data is under `evidence`, by sha256)."""
    return {
        "name": fact.name,
        "source": fact.source,
        "status": fact.status,
        "stderr": fact.stderr,
        "collected_at": fact.collected_at,
        "sha256": fact.sha256,
        "error": fact.error,
    }


def target_dict(record: TargetRecord) -> dict[str, Any]:
    """A target as the document holds it (its facts without their data)."""
    return {
        "name": record.name,
        "url": record.url,
        "kind": str(record.kind),
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "error": record.error,
        "facts": [fact_record(f) for f in record.facts],
    }


def result_dicts(results: Iterable[Result]) -> list[dict[str, Any]]:
    """Results as the document (and the store) hold them. The results of one subject share
    one subject dict, those of one check one evidence list, as their Results share one
    Subject and one evidence tuple: a run holds hundreds of results per target, and a copy
    each would double the document's memory and the time to build it."""
    subjects: dict[int, tuple[Subject, dict[str, Any]]] = {}  # by id, the object kept alive
    evidence: dict[int, tuple[tuple[str, ...], list[str]]] = {}
    out = []
    for result in results:
        subject = result.subject
        known = subjects.get(id(subject))
        if known is None:
            known = subjects[id(subject)] = (
                subject,
                {
                    "kind": subject.kind,
                    "name": subject.name,
                    "id": subject.id,
                    "location": subject.location,
                },
            )
        hashes = evidence.get(id(result.evidence))
        if hashes is None:
            hashes = evidence[id(result.evidence)] = (result.evidence, list(result.evidence))
        out.append(
            {
                "check_id": result.check_id,
                "control_id": result.control_id,
                "title": result.title,
                "severity": str(result.severity),
                "target": result.target,
                "subject": known[1],
                "status": str(result.status),
                "message": result.message,
                "observed": result.observed,
                "expected": result.expected,
                "evidence": hashes[1],
                "remediation": result.remediation,
                "waiver": result.waiver,
                "attestation": result.attestation,
            }
        )
    return out


def dumps(document: dict[str, Any]) -> str:
    """The document as JSON text (see `encode`)."""
    return encode(document).decode("utf-8")


def encode(document: dict[str, Any]) -> bytes:
    """The document as UTF-8 JSON, unindented (`jq .` shows it indented). orjson writes a
    100,000-result document in a tenth of the stdlib's time, as bytes. What orjson refuses
    (an integer beyond 64 bits) goes through the stdlib encoder. Evidence held as FactJson
    is written as the JSON text it is, never decoded. A run's report is written by
    `write_json`, which never holds all of it."""
    return _json(document) + b"\n"


def _json(value: Any) -> bytes:
    try:
        return orjson.dumps(value, default=_orjson_default, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return json.dumps(value, ensure_ascii=False, default=_stdlib_default).encode("utf-8")


RESULTS_PER_PIECE = 1000  # results encoded at once by write_json


def write_json(document: Mapping[str, Any], out: BinaryIO) -> None:
    """The document as `encode` gives it (evidence last), written to `out` a piece at a time:
    the results a thousand at a time, the evidence one fact's data at a time, read from the
    run's EvidenceSpool when it has one. A run of 10,000 hosts has a report of gigabytes: it
    is never all in memory, nor copied."""
    out.write(b"{")
    rest = ((key, value) for key, value in document.items() if key != "evidence")
    for index, (key, value) in enumerate(rest):
        out.write(b"%s%s:" % (b"," if index else b"", orjson.dumps(key)))
        if key == "results":
            _write_list(value, out)
        else:
            out.write(_json(value))
    evidence = document["evidence"]
    out.write(b',"evidence":{')
    for index, sha256 in enumerate(evidence):
        out.write(b"%s%s:" % (b"," if index else b"", orjson.dumps(sha256)))
        if isinstance(evidence, EvidenceSpool):
            out.write(evidence.raw(sha256))
        else:
            out.write(_json(evidence[sha256]))
    out.write(b"}}\n")


def _write_list(items: list[Any], out: BinaryIO) -> None:
    out.write(b"[")
    for start in range(0, len(items), RESULTS_PER_PIECE):
        piece = memoryview(_json(items[start : start + RESULTS_PER_PIECE]))
        out.write(b"," if start else b"")
        out.write(piece[1:-1])  # without the piece's own brackets
    out.write(b"]")


def _orjson_default(value: Any) -> Any:
    if isinstance(value, FactJson):
        return orjson.Fragment(value.text)
    if isinstance(value, EvidenceSpool):  # encode() of a spooled run: all of it, in memory
        return {sha256: orjson.Fragment(value.raw(sha256)) for sha256 in value}
    return str(value)


def _stdlib_default(value: Any) -> Any:
    if isinstance(value, FactJson):
        return fact_data(value)
    if isinstance(value, EvidenceSpool):
        return {sha256: fact_data(value[sha256]) for sha256 in value}
    return str(value)


MAX_DOCUMENT_BYTES = 2**30  # a results document read back by `auditor report`


def load(path: Path) -> dict[str, Any]:
    """Read a results document written by `--report json:PATH`, checked against its JSON
    Schema before any reporter sees it (a hand-edited or foreign file is an input error)."""
    try:
        data = orjson.loads(read_regular_file(path, MAX_DOCUMENT_BYTES))
    except UnreadableFile as exc:
        raise InputError(exc.reason, path=path) from exc
    except orjson.JSONDecodeError as exc:
        raise InputError(f"not JSON: {exc.msg}", path=path, line=exc.lineno) from exc
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise InputError(f"not an auditor results document (schema {SCHEMA})", path=path)
    try:
        _results_validator()(data)
    except fastjsonschema.JsonSchemaValueException as exc:
        where = ".".join(exc.path[1:]) if exc.path else "document"
        message = str(exc.message).replace(str(exc.name or ""), "", 1).strip()
        raise InputError(
            f"not a valid results document: {message[:200]}", path=path, item=where[:120]
        ) from exc
    except RecursionError as exc:
        raise InputError("not a valid results document: nested too deep", path=path) from exc
    return data


@cache
def _results_validator() -> Callable[[Any], Any]:
    schema = json.loads(results_schema_path().read_text(encoding="utf-8"))
    validator: Callable[[Any], Any] = fastjsonschema.compile(schema)
    return validator
