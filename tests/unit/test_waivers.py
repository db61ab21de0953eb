"""Waivers and attestations: validation with file/line/item, application, expiry, reports."""

from __future__ import annotations

import hashlib
import textwrap
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from auditor.attestations import load_attestations
from auditor.model import Result, Severity, Status, Subject
from auditor.scoring import score
from auditor.waivers import NOT_RUN, WaiverError, end_of, load_waivers

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def write(tmp_path: Path, text: str, name: str = "waivers.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def result(
    check: str = "host.sshd.no-root-login",
    status: Status = Status.FAIL,
    target: str = "web1",
    subject: str = "web1",
    control: str = "4.4.3",
) -> Result:
    return Result(
        check_id=check, control_id=control, title=check, severity=Severity.HIGH, target=target,
        subject=Subject("host", subject), status=status, message=f"{check} failed",
        observed={"x": 1}, evidence=("ab" * 32,),
    )  # fmt: skip


WAIVER = """\
waivers:
  - id: SEC-1
    check: host.sshd.*
    targets: "web*"
    justification: Break-glass root login until the bastion exists.
    owner: alice
    approver: bob
    ticket: https://tracker.example.com/SEC-1
    expires: 2026-06-30
"""


def test_waived_result_keeps_its_real_status_message_and_evidence(tmp_path):
    waivers = load_waivers(write(tmp_path, WAIVER), NOW)
    failing, passing, other_target = waivers.apply(
        [result(), result(status=Status.PASS), result(target="db1", subject="db1")]
    )
    assert failing.status is Status.WAIVED
    assert failing.waiver is not None
    assert failing.waiver["status"] == "fail"
    assert failing.waiver["id"] == "SEC-1" and failing.waiver["ticket"].endswith("SEC-1")
    assert failing.waiver["source"] == f"{tmp_path / 'waivers.yaml'}:2"
    assert failing.message == "host.sshd.no-root-login failed"  # shown, never hidden
    assert failing.observed == {"x": 1} and failing.evidence == ("ab" * 32,)
    assert passing.status is Status.PASS and passing.waiver is None  # a pass is not waived
    assert other_target.status is Status.FAIL  # the target glob does not match db1
    report = waivers.report()
    assert report["applied"] == [
        {"id": "SEC-1", "expires": "2026-06-30", "source": failing.waiver["source"], "waived": 1}
    ]
    assert report["unmatched"] == [] and report["expired"] == []


def test_waived_results_leave_the_score_ratio(tmp_path):
    waivers = load_waivers(write(tmp_path, WAIVER), NOW)
    results = [result(), result(check="host.other", status=Status.PASS)]
    assert score(results, {}).overall.value == 50.0
    assert score(waivers.apply(results), {}).overall.value == 100.0


def test_an_error_is_waivable_and_a_control_selector_works(tmp_path):
    path = write(tmp_path, """\
        waivers:
          - control: "4.4.*"
            subjects: [web1]
            justification: No sudo on this box yet.
            expires: 2026-07-01
    """)  # fmt: skip
    waived, skipped = load_waivers(path, NOW).apply(
        [result(status=Status.ERROR), result(status=Status.SKIP)]
    )
    assert waived.status is Status.WAIVED and waived.waiver["status"] == "error"
    assert waived.waiver["id"] == "waivers.yaml#1"  # no id: named by file and position
    assert skipped.status is Status.SKIP


def test_still_runs_false_waives_any_verdict_and_drops_it(tmp_path):
    path = write(tmp_path, WAIVER + "    still_runs: false\n")
    (waived,) = load_waivers(path, NOW).apply([result(status=Status.PASS)])
    assert waived.status is Status.WAIVED
    assert waived.waiver["status"] == NOT_RUN
    assert waived.observed == {} and waived.evidence == ()


def test_a_date_expiry_lasts_until_the_end_of_that_day(tmp_path):
    path = write(tmp_path, WAIVER)
    last_moment = end_of(date(2026, 6, 30)) - timedelta(seconds=1)
    assert load_waivers(path, last_moment).apply([result()])[0].status is Status.WAIVED
    after = load_waivers(path, end_of(date(2026, 6, 30)))
    assert after.apply([result()])[0].status is Status.FAIL
    report = after.report()
    assert [w["id"] for w in report["expired"]] == ["SEC-1"]
    assert report["expired"][0]["justification"].startswith("Break-glass")
    assert after.warnings() == ["waiver SEC-1 expired on 2026-06-30: it no longer applies"]


def test_expiring_soon_not_started_and_unmatched_are_reported(tmp_path):
    path = write(tmp_path, """\
        waivers:
          - id: soon
            check: host.sshd.no-root-login
            justification: j
            expires: 2026-06-20T00:00:00Z
          - id: later
            check: host.sshd.no-root-login
            justification: j
            start: 2026-07-01
            expires: 2026-12-31
          - id: typo
            check: host.sshd.no-rot-login
            justification: j
            expires: 2027-01-01
          - id: fixed
            check: host.fixed
            justification: j
            expires: 2027-01-01
    """)  # fmt: skip
    waivers = load_waivers(path, NOW, warning_days=30)
    waivers.apply([result(), result(check="host.fixed", status=Status.PASS)])
    report = waivers.report()
    assert [(w["id"], w["days_left"]) for w in report["expiring"]] == [("soon", 4.5)]
    assert [w["id"] for w in report["not_started"]] == ["later"]
    reasons = {w["id"]: w["reason"] for w in report["unmatched"]}
    assert reasons == {
        "typo": "it selects no result of this run",
        "fixed": "every result it selects passes or does not apply: remove it?",
    }
    lines = waivers.warnings()
    assert "waiver soon expires in 4.5 days (2026-06-20T00:00:00Z)" in lines
    assert "waiver typo waived nothing: it selects no result of this run" in lines


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("waivers:\n  - id: a\n    check: x\n    expires: 2027-01-01\n",
         "waivers.yaml:2: a: missing required key 'justification'"),
        ("waivers:\n  - id: a\n    check: x\n    justification: ' '\n    expires: 2027-01-01\n",
         "waivers.yaml:4: a: justification: justification must not be blank"),
        ("waivers:\n  - id: a\n    justification: j\n    expires: 2027-01-01\n",
         "waivers.yaml:2: a: a waiver needs `check` or `control`"),
        ("waivers:\n  - id: a\n    check: x\n    justification: j\n    expires: 2027-01-01\n"
         "    colour: red\n", "waivers.yaml:6: a: unknown key 'colour'"),
        ("waivers:\n  - id: a\n    check: x\n    justification: j\n    expires: soon\n",
         "waivers.yaml:5: a: expires:"),
        ("waivers:\n  - id: a\n    check: x\n    justification: j\n    expires: 2027-01-01\n"
         "    start: 2027-02-01\n", "waivers.yaml:2: a: expires before it starts"),
        ("waivers:\n  - {id: a, check: x, justification: j, expires: 2027-01-01}\n"
         "  - {id: a, check: y, justification: j, expires: 2027-01-01}\n",
         "waivers.yaml:3: a: duplicate waiver id (first on line 2)"),
        ("waivers: [\n", "waivers.yaml:2: invalid YAML"),
        ("- a\n", "waivers.yaml:1: expected a mapping with `waivers:`"),
    ],
    ids=["no-justification", "blank-justification", "no-selector", "unknown-key", "bad-date",
         "ends-before-start", "duplicate-id", "bad-yaml", "not-a-mapping"],
)  # fmt: skip
def test_bad_waiver_files_name_file_line_and_item(tmp_path, body, expected):
    path = write(tmp_path, body)
    with pytest.raises(WaiverError) as caught:
        load_waivers(path, NOW)
    assert str(caught.value).startswith(str(tmp_path / expected))
    assert caught.value.exit_status == 2


def test_every_problem_of_a_file_is_reported_at_once(tmp_path):
    path = write(tmp_path, """\
        waivers:
          - {id: a, check: x, expires: 2027-01-01}
          - {id: b, check: y, justification: j}
    """)  # fmt: skip
    with pytest.raises(WaiverError) as caught:
        load_waivers(path, NOW)
    assert "a: missing required key 'justification'" in str(caught.value)
    assert any("b: missing required key 'expires'" in line for line in caught.value.more)


# --- attestations ---------------------------------------------------------------------------


def manual(control: str = "4.1.1") -> Result:
    return Result(
        check_id=f"attest.{control}", control_id=control, title="Is it so?",
        severity=Severity.HIGH, target="organisation", subject=Subject("control", control),
        status=Status.MANUAL, message="needs an attestation",
    )  # fmt: skip


ATTESTATIONS = """\
attestations:
  - control: "4.1.1"
    answer: yes
    by: alice@example.com
    at: 2026-05-01
    evidence: evidence/pipeline.pdf
    expires: 2027-05-01
    comment: Only CI builds images.
  - control: "4.1.2"
    answer: no
    by: bob@example.com
    at: 2026-05-02
    evidence: https://wiki.example.com/registry
    expires: 2026-06-01
  - control: "4.9.9"
    answer: yes
    by: carol
    at: 2026-05-02
    evidence: https://wiki.example.com/other
    expires: 2027-01-01
"""


def test_attestations_answer_manual_controls_and_expire(tmp_path):
    (tmp_path / "evidence").mkdir()
    (tmp_path / "evidence" / "pipeline.pdf").write_bytes(b"%PDF-1.4 pipeline")
    path = write(tmp_path, ATTESTATIONS, "attestations.yaml")
    attestations = load_attestations(path, NOW)
    yes, expired, unasked = attestations.apply([manual("4.1.1"), manual("4.1.2"), manual("4.3.1")])
    assert yes.status is Status.PASS
    assert yes.attestation is not None
    assert {k: yes.attestation[k] for k in ("answer", "by", "at", "evidence", "expires")} == {
        "answer": "yes",
        "by": "alice@example.com",
        "at": "2026-05-01",
        "evidence": "evidence/pipeline.pdf",
        "expires": "2027-05-01",
    }
    digest = hashlib.sha256(b"%PDF-1.4 pipeline").hexdigest()
    assert yes.attestation["evidence_sha256"] == digest
    assert "alice@example.com" in yes.message and "Only CI builds images." in yes.message
    assert expired.status is Status.MANUAL  # expired on 2026-06-01: stops applying
    assert "expired 2026-06-01" in expired.message
    assert unasked.status is Status.MANUAL
    report = attestations.report()
    assert [a["control"] for a in report["applied"]] == ["4.1.1"]
    assert [a["control"] for a in report["expired"]] == ["4.1.2"]
    assert [a["control"] for a in report["unmatched"]] == ["4.9.9"]
    # an answered control is scored with its severity like any check
    assert score([yes], {}).overall.value == 100.0
    (no,) = load_attestations(path, datetime(2026, 5, 20, tzinfo=UTC)).apply([manual("4.1.2")])
    assert no.status is Status.FAIL and no.attestation["answer"] == "no"


def test_attestation_evidence_file_must_exist(tmp_path):
    path = write(tmp_path, ATTESTATIONS, "attestations.yaml")
    with pytest.raises(WaiverError) as caught:
        load_attestations(path, NOW)
    message = str(caught.value)
    assert message.startswith(f"{path}:6: 4.1.1: evidence file 'evidence/pipeline.pdf'")


def test_attestation_answers_must_be_yes_or_no(tmp_path):
    path = write(
        tmp_path,
        ATTESTATIONS.replace("answer: yes", "answer: maybe", 1).replace(
            "evidence/pipeline.pdf", "https://x.example.com/p"
        ),
        "attestations.yaml",
    )
    with pytest.raises(WaiverError) as caught:
        load_attestations(path, NOW)
    assert str(caught.value).startswith(f"{path}:3: 4.1.1: answer:")
