"""What crosses the broker (auditor/fleet/wire.py): a task carries no credential or trust
setting, and a judged target comes back as it left the worker."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from auditor.config import TargetSpec
from auditor.engine import Judged
from auditor.facts import new_fact, utc_now
from auditor.fleet.wire import (
    BadAnswer,
    ProfileRequest,
    checks_by_id,
    judged_from_json,
    judged_to_json,
    spec_from_payload,
    task_payload,
)
from auditor.model import FactJson, Result, Status, TargetKind, TargetRecord, fact_data
from auditor.profiles import LoadedProfile

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "facts"

SECRETS = {
    "identity_files": ("/home/me/.ssh/prod_ed25519",),
    "known_hosts": "/home/me/.ssh/known_hosts_prod",
    "ssh_config": "/home/me/.ssh/config_prod",
    "tls_ca": "/etc/docker/ca-prod.pem",
    "tls_cert": "/etc/docker/cert-prod.pem",
    "tls_key": "/etc/docker/key-prod.pem",
    "kubeconfig": "/home/me/.kube/prod-admin",
}


def test_a_task_carries_no_credential_and_no_trust_setting():
    spec = TargetSpec(url="ssh://web1.dc1.example", name="web1", user="audit", port=2222,
                      sudo=True, accept_new_host_keys=True, zone="dc1", variables={"x": 1},
                      layer_cache="postgresql://audit:pw@coordinator/db", **SECRETS)  # fmt: skip
    request = ProfileRequest("nist-800-190", (), {}, "sha256:" + "0" * 64)
    payload = json.loads(json.dumps(task_payload("run-1", spec, request)))
    text = json.dumps(payload)
    for value in SECRETS.values():
        for item in value if isinstance(value, tuple) else (value,):
            assert item not in text
    assert "accept_new_host_keys" not in text and "coordinator/db" not in text
    worker_own = TargetSpec(
        url="local://",
        identity_files=("/srv/zone.key",),
        known_hosts="/srv/kh",
        layer_cache="sqlite:///srv/worker-layers.db",  # `auditor worker --db`: its own
    )
    spec_there = spec_from_payload(payload, worker_own)
    assert (spec_there.url, spec_there.user, spec_there.port, spec_there.sudo) == (
        "ssh://web1.dc1.example", "audit", 2222, True)  # fmt: skip
    assert spec_there.identity_files == ("/srv/zone.key",) and spec_there.known_hosts == "/srv/kh"
    assert spec_there.accept_new_host_keys is False and spec_there.variables == {"x": 1}
    assert spec_there.layer_cache == "sqlite:///srv/worker-layers.db"


def test_a_judged_target_comes_back_as_it_left(recorded_host):
    """Every result of a judged Debian host, its static fields taken from the coordinator's
    copy of the profile and its evidence from the record's facts, equals what the worker
    judged; each fact's data is kept as the JSON text its sha256 was taken over (and reads
    back equal); and its results take less than half the room whole results would."""
    from auditor.document import result_dicts

    profile, record, results = recorded_host
    waived = replace(results[0], waiver={"reason": "r", "status": "fail"})
    sent = Judged(record, [waived, *results[1:]], {"max": 3})
    wire = judged_to_json(sent, "w1")
    back = judged_from_json(json.loads(json.dumps(wire)), checks_by_id(profile))
    assert all(isinstance(f.data, FactJson) for f in back.record.facts)
    decoded = tuple(replace(f, data=fact_data(f.data)) for f in back.record.facts)
    assert replace(back, record=replace(back.record, facts=decoded)) == Judged(
        record, sent.results, {"max": 3}, "w1"
    )
    assert len(results) > 100 and {r.status for r in results} >= {Status.PASS, Status.FAIL}
    whole = json.dumps(result_dicts(results))
    assert len(json.dumps(wire["results"])) < len(whole) / 2


def test_an_answer_with_a_check_the_profile_lacks_is_refused(recorded_host):
    profile, record, results = recorded_host
    wire = json.loads(json.dumps(judged_to_json(Judged(record, results, {}), "w1")))
    wire["results"][0][0] = "host.no-such-check"
    with pytest.raises(BadAnswer, match="host.no-such-check"):
        judged_from_json(wire, checks_by_id(profile))


def test_fact_data_that_is_not_what_its_hash_was_taken_over_is_refused(recorded_host):
    """Evidence altered on its way (or by a worker gone wrong) is not kept under the hash
    every result cites."""
    profile, record, results = recorded_host
    wire = json.loads(json.dumps(judged_to_json(Judged(record, results, {}), "w1")))
    fact = next(f for f in wire["record"]["facts"] if f["name"] == "host.os")
    fact["data"] = fact["data"].replace("debian", "flatcar")
    with pytest.raises(BadAnswer, match="host.os"):
        judged_from_json(wire, checks_by_id(profile))


@pytest.fixture(scope="module")
def recorded_host() -> tuple[LoadedProfile, TargetRecord, list[Result]]:
    """The recorded facts of a Debian 12 VM (tests/fixtures/facts), judged by nist-800-190."""
    from auditor import engine
    from auditor.views import load_named

    facts = []
    for folder in sorted(FIXTURES.glob("host.*")):
        case = folder / "debian12-buildvm-root.json"
        if not case.exists():
            case = sorted(folder.glob("*.json"))[0]
        recorded = json.loads(case.read_text())
        facts.append(new_fact(folder.name, "vm", recorded["expected"], source=recorded["source"]))
    now = utc_now()
    record = TargetRecord("vm", "ssh://vm", TargetKind.HOST, now, now, facts=tuple(facts))
    profile = load_named("nist-800-190", ())
    return profile, record, engine.evaluate(profile, record, profile.variables)


def test_fleet_messages_are_exact_json():
    """What crosses the broker is JSON any reader takes, integers past 64 bits included."""
    import json
    from datetime import UTC, datetime

    from kombu.serialization import dumps, loads

    from auditor.fleet.app import SERIALIZER, make_app

    make_app("redis://127.0.0.1:1/0")  # registers the serializer; connects to nothing
    for message in (
        {"n": 2**70, "s": "é\u2028"},
        {"n": 1, "when": datetime(2026, 1, 2, tzinfo=UTC)},
    ):
        content_type, encoding, body = dumps(message, serializer=SERIALIZER)
        expected = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in message.items()}
        assert json.loads(body) == expected
        assert loads(body, content_type, encoding, accept=[content_type]) == expected


class _Answering:
    """A dispatch whose every target gets `answer` back (no broker)."""

    def __init__(self, answer: dict) -> None:
        self.answer = answer

    def send(self, specs, task, on_answer) -> None:
        for spec in specs:
            on_answer(spec, self.answer, None)


def test_an_unusable_answer_is_an_error_of_its_target_not_of_the_run(recorded_host):
    """Forged evidence in an answer: `auditor run` records the target as an error with the
    reason, `auditor collect` writes it as a record with that error; nothing else stops."""
    from auditor.fleet.coordinator import DistributedTargets, collect

    profile, record, results = recorded_host
    wire = json.loads(json.dumps(judged_to_json(Judged(record, results, {}), "w1")))
    fact = next(f for f in wire["record"]["facts"] if f["name"] == "host.os")
    fact["data"] = fact["data"].replace("debian", "flatcar")
    spec = TargetSpec(url="ssh://vm", name="vm")
    collected = collect([spec], _Answering(wire))
    assert collected[0].error.startswith("the worker's answer is unusable: the data of fact")
    judged: list[Judged] = []
    DistributedTargets([spec], _Answering(wire)).judge(profile, judged.append)
    assert judged[0].record.error == collected[0].error
    assert judged[0].results and {r.status for r in judged[0].results} == {Status.ERROR}
