"""Results documents for the reporter tests, built through the real engine and document code.

`fixture_document()`: hosts, Docker daemons and clusters whose facts are the recorded check
fixtures (tests/fixtures/checks), judged by the shipped profile, with a waiver, an answered
attestation and run history: every status, several targets per kind, no server needed.

`hostile_document()`: a host whose name, services, sockets, listening processes and files
carry HOSTILE text, plus a planted SECRET in its facts that new_fact must redact; the engine
writes the hostile text into subjects and messages the way a real audit would.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

from auditor import document, engine
from auditor.facts import new_fact
from auditor.model import Result, Run, Status, TargetKind, TargetRecord
from auditor.profiles import LoadedProfile, load_profile

FIXTURES = Path(__file__).parent / "fixtures" / "checks"
STARTED = "2026-11-20T09:00:00.000Z"
FINISHED = "2026-11-20T09:00:42.000Z"

# Everything a target could send that must stay text: markup, a template expression, quotes,
# a spreadsheet formula and terminal / NUL / BEL control characters.
SCRIPT = "<script>alert(1)</script>"
# Invisible formatting characters that reorder or hide what a reader sees ("Trojan Source"):
# a right-to-left override, an isolate, zero-width and direction marks, a byte order mark, a
# soft hyphen, the Arabic letter mark, a tag character and the line separator.
INVISIBLE = (
    "\u202eevil\u202c \u2066iso\u2069 zero\u200bwidth\u200f \ufeffbom soft\u00adhyphen "
    "\u061cmark \U000e0041tag line\u2028sep"
)
HOSTILE = (
    f"{SCRIPT}</textarea>{{{{ 7*7 }}}}\"quoted\" 'single' =cmd|' /C calc'!A0 \x1b[31mred\x00\x07"
    f" {INVISIBLE}"
)
FORMULA = "=cmd|' /C calc'!A0"
SECRET = "hunter2-planted"
EVENT_HANDLER = "<img src=x onerror=alert(2)>"


def _merge(into: dict[str, Any], facts: dict[str, Any]) -> None:
    """Fold a fixture's facts into a target's: lists of subjects add up, maps merge."""
    for name, data in facts.items():
        if name not in into:
            into[name] = data
        elif isinstance(into[name], list) and isinstance(data, list):
            into[name] = into[name] + data
        elif isinstance(into[name], dict) and isinstance(data, dict):
            into[name] = {**data, **into[name]}


def _kind(check_id: str, profile: LoadedProfile) -> TargetKind | None:
    for check in profile.checks:
        if check.id == check_id:
            return check.check.target
    return None


def fixture_run(
    profile: LoadedProfile,
    targets_per_kind: int = 2,
    kinds: tuple[TargetKind, ...] = (TargetKind.HOST, TargetKind.DOCKER, TargetKind.KUBERNETES),
) -> Run:
    """Targets of each kind, each holding the facts of a share of the recorded fixtures."""
    facts: dict[tuple[TargetKind, int], dict[str, Any]] = defaultdict(dict)
    for index, path in enumerate(sorted(FIXTURES.glob("*/*.json"))):
        kind = _kind(path.parent.name, profile)
        if kind not in kinds:
            continue
        data = json.loads(path.read_text())
        slot = index % targets_per_kind
        _merge(facts[(kind, slot)], data["facts"])
    names = {
        TargetKind.HOST: "node",
        TargetKind.DOCKER: "dockerd",
        TargetKind.KUBERNETES: "cluster",
    }
    records: list[TargetRecord] = []
    results: list[Result] = []
    for (kind, slot), target_facts in sorted(facts.items(), key=lambda i: (i[0][0], i[0][1])):
        name = f"{names[kind]}-{slot + 1}.example.net"
        record = TargetRecord(
            name,
            f"{kind.value}://{name}",
            kind,
            STARTED,
            FINISHED,
            facts=tuple(
                new_fact(fact, name, data, source=f"recorded fixture {fact}", collected_at=STARTED)
                for fact, data in sorted(target_facts.items())
            ),
        )
        records.append(record)
        results.extend(engine.evaluate(profile, record, profile.variables))
    unreachable = TargetRecord(
        "unreachable.example.net",
        "ssh://root@unreachable.example.net",
        TargetKind.HOST,
        STARTED,
        FINISHED,
        error="cannot connect to unreachable.example.net:22: timed out after 10s",
    )
    records.append(unreachable)
    results.extend(engine.evaluate(profile, unreachable, profile.variables))
    results = _waive_and_attest(results)
    results.extend(
        _answer(r) for r in engine.attestation_results(profile, {r.kind for r in records})
    )
    return Run(
        id="3f9a1c2e-0000-4000-8000-00000000f1x7",
        tool_version="test",
        profile_id=profile.id,
        profile_version=profile.version,
        started_at=STARTED,
        finished_at=FINISHED,
        targets=tuple(records),
        results=tuple(results),
    )


def _waive_and_attest(results: list[Result]) -> list[Result]:
    """Waive the first failing result, the way auditor.waivers does."""
    out = []
    waived = False
    for result in results:
        if not waived and result.status is Status.FAIL:
            waived = True
            result = replace(
                result,
                status=Status.WAIVED,
                waiver={
                    "id": "SEC-101",
                    "justification": "Break-glass access until the bastion is in place.",
                    "owner": "alice@example.com",
                    "approver": "bob@example.com",
                    "ticket": "https://tracker.example.com/SEC-101",
                    "expires": "2027-06-30",
                    "source": "waivers.yaml:3",
                    "status": "fail",
                },
            )
        out.append(result)
    return out


def _answer(result: Result) -> Result:
    """Answer the first attestation question (4.5.1's) with yes; leave the rest open."""
    if result.control_id != "4.5.1":
        return result
    return replace(
        result,
        status=Status.PASS,
        message="attested yes by carol@example.com on 2026-11-01",
        attestation={
            "answer": "yes",
            "by": "carol@example.com",
            "at": "2026-11-01T00:00:00Z",
            "evidence": "https://wiki.example.com/hardening-baseline",
            "expires": "2027-11-01",
            "source": "attestations.yaml:2",
        },
    )


def with_history(doc: dict[str, Any]) -> dict[str, Any]:
    """Three earlier runs; the first was stored before runs kept their section scores and
    severity counts (a gap in those trends), the other two have them."""
    doc["history"] = [
        {"run_id": f"earlier-{i}", "finished_at": f"2026-11-{10 + i:02d}T09:{i:02d}:00Z",
         "score": score, "coverage": coverage, "grade": None}
        for i, (score, coverage) in enumerate([(31.0, 70.5), (38.2, 74.0), (45.9, 77.5)])
    ]  # fmt: skip
    for i, point in enumerate(doc["history"][1:], 1):
        point["sections"] = {"host-os": 30.0 + 5 * i, "container": 40.0 + 5 * i}
        point["severities"] = {"critical": 9 - i, "high": 14 - i, "medium": 20, "low": 3}
    return doc


@cache
def fixture_document() -> dict[str, Any]:
    """Built once per process; reporters never change the document they render."""
    profile = load_profile()
    return with_history(document.build(fixture_run(profile), profile))


@cache
def host_document() -> dict[str, Any]:
    """Hosts only: a smaller document for the slower renderers (PDF)."""
    profile = load_profile()
    return with_history(document.build(fixture_run(profile, kinds=(TargetKind.HOST,)), profile))


def hostile_record(name: str = f"web-{HOSTILE}.example.net") -> TargetRecord:
    """A host whose every readable string is hostile, with a planted secret in its facts."""
    units = {
        f"{HOSTILE}.service": {"load": "loaded", "active": "active", "sub": "running",
                               "enabled": "enabled", "description": HOSTILE,
                               "environment": [f"DB_PASSWORD={SECRET}", f"NOTE={EVENT_HANDLER}"]},
        "ssh.service": {"load": "loaded", "active": "active", "sub": "running",
                        "enabled": "enabled"},
        f"{FORMULA}.service": {"load": "loaded", "active": "active", "sub": "running",
                               "enabled": "enabled"},
    }  # fmt: skip
    facts = {
        "host.systemd": {"available": True, "units": units},
        "host.listening": [
            {"proto": "tcp", "address": "0.0.0.0", "port": 8443, "process": HOSTILE,
             "pid": 4242, "interface": None},
        ],
        "host.file_modes": [
            {"path": f"/var/run/{HOSTILE}.sock", "exists": True, "type": "socket",
             "mode": "0666", "uid": 0, "gid": 0, "owner": HOSTILE, "group": "docker",
             "link": None, "resolved": None, "error": None},
        ],
        "host.os": {"id": HOSTILE, "version_id": "12", "kernel": "6.1.0",
                    "env": {"DB_PASSWORD": SECRET}},
        "host.sshd_config": {"permitrootlogin": HOSTILE, "passwordauthentication": "yes",
                             "password": SECRET},
    }  # fmt: skip
    return TargetRecord(
        name,
        f"ssh://root@{name}",
        TargetKind.HOST,
        STARTED,
        FINISHED,
        facts=tuple(
            new_fact(
                fact,
                name,
                data,
                source=f"/bin/sh -s (section {fact}) {HOSTILE}",
                stderr=f"warning: --db-password={SECRET}",
                collected_at=STARTED,
            )
            for fact, data in facts.items()
        ),
    )


def hostile_results(profile: LoadedProfile, record: TargetRecord) -> list[Result]:
    variables = {
        **profile.variables,
        "runtime_sockets": [*profile.variables["runtime_sockets"], f"/var/run/{HOSTILE}.sock"],
    }
    results = engine.evaluate(profile, record, variables)
    out = []
    for result in results:
        if result.status is Status.FAIL and not any(r.status is Status.WAIVED for r in out):
            result = replace(
                result,
                status=Status.WAIVED,
                waiver={"id": HOSTILE, "justification": HOSTILE, "owner": HOSTILE,
                        "expires": "2027-01-01", "status": "fail"},
            )  # fmt: skip
        out.append(result)
    return out


def hostile_run(profile: LoadedProfile, extra: tuple[TargetRecord, ...] = ()) -> Run:
    """The hostile host plus any `extra` records (real Docker / snapshot targets)."""
    record = hostile_record()
    results = hostile_results(profile, record)
    for other in extra:
        results.extend(engine.evaluate(profile, other, profile.variables))
    records = (record, *extra)
    results.extend(engine.attestation_results(profile, {r.kind for r in records}))
    return Run(
        id="hostile-run",
        tool_version="test",
        profile_id=profile.id,
        profile_version=profile.version,
        started_at=STARTED,
        finished_at=FINISHED,
        targets=records,
        results=tuple(results),
    )


def hostile_document(extra: tuple[TargetRecord, ...] = ()) -> dict[str, Any]:
    profile = load_profile()
    doc = document.build(hostile_run(profile, extra), profile)
    doc["history"] = [
        {"run_id": HOSTILE, "finished_at": "2026-11-01T00:00:00Z", "score": 50.0,
         "coverage": 60.0, "grade": "F"}
    ]  # fmt: skip
    return doc
