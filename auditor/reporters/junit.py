"""JUnit XML: one test suite per target, one test case per check and subject.

A case's identity (suite, classname, name) is what CI servers key test history and "new
failure" on, so it is unique and stable across runs: suite = target, classname = check id,
name = control, title, subject and, for a manifest subject, its file:line.

Valid against both schemas CI servers use (the strict Ant JUnit.xsd and Jenkins xUnit's
junit-10.xsd): `testsuites` carries no attributes, every suite has properties, system-out and
system-err, timestamps have no zone. A failing subject is a `failure` whose text says what was
observed, what was expected, how to fix it and which evidence it rests on; a subject that could
not be evaluated is an `error`; skipped, waived and unanswered manual results are `skipped`.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import datetime
from typing import Any

from auditor.reporters.common import (
    checks_by_id,
    evidence_lines,
    facts_by_hash,
    reference_lines,
    subject_text,
)
from auditor.reporters.exemptions import exempting_variable
from auditor.sanitize import one_line, visible


def _timestamp(value: str) -> str:
    """ISO 8601 without zone or fraction, as JUnit.xsd wants (the times are UTC)."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return "1970-01-01T00:00:00"
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def _seconds(started: str, finished: str) -> str:
    try:
        start = datetime.fromisoformat(started.replace("Z", "+00:00"))
        end = datetime.fromisoformat(finished.replace("Z", "+00:00"))
    except ValueError:
        return "0"
    return f"{max(0.0, (end - start).total_seconds()):.3f}"


def _fmt(value: float | None, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:.1f}{suffix}"


def _case_name(result: dict[str, Any]) -> str:
    """`[CR-1] Containers are not privileged (Pod shop/web at deploy/web.yaml:12)`."""
    subject = subject_text(result)
    location = result["subject"].get("location")
    where = " ".join(part for part in (subject, f"at {location}" if location else "") if part)
    title = one_line(f"[{result['control_id']}] {result['title']}", 300)
    return title + (f" ({one_line(where, 700)})" if where else "")


def _case_names(results: list[dict[str, Any]]) -> list[str]:
    """The case name of each result of one suite; a (check, name) pair that would still repeat
    (two subjects that print alike) gets `#2`, `#3` in result order, which is stable."""
    seen: dict[tuple[str, str], int] = {}
    names = []
    for result in results:
        name = _case_name(result)
        key = (result["check_id"], name)
        seen[key] = seen.get(key, 0) + 1
        names.append(name if seen[key] == 1 else f"{name} #{seen[key]}")
    return names


def _not_audited(down: dict[str, Any], profile: str) -> dict[str, Any]:
    """A target that could not be audited at all, as the one error result JUnit shows."""
    return {
        "check_id": f"auditor.{profile}.target",
        "control_id": "-",
        "title": "target audited",
        "severity": "info",
        "target": down["target"],
        "subject": {"kind": down["kind"], "name": down["target"], "location": None},
        "status": "error",
        "message": f"not audited: {down['reason']} ({down['checks']} checks could not judge it)",
        "observed": {},
        "expected": "the target answers and its facts can be collected",
        "remediation": "",
        "evidence": [],
    }


class JunitReporter:
    def render(self, document: dict[str, Any]) -> str:
        run = document["run"]
        checks = checks_by_id(document)
        evidence = facts_by_hash(document)
        targets = {t["name"]: t for t in document["targets"]}
        by_target: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
        for result in document["results"]:
            by_target.setdefault(result["target"], []).append(result)
        for down in document.get("not_audited", []):  # one test case, not one per check
            by_target[down["target"]] = [_not_audited(down, run["profile"]["id"])]

        root = ET.Element("testsuites")
        for index, (name, results) in enumerate(by_target.items()):
            target = targets.get(name)
            counts = {
                s: sum(1 for r in results if r["status"] == s)
                for s in ("fail", "error", "skip", "manual", "waived")
            }
            suite = ET.SubElement(
                root,
                "testsuite",
                name=visible(name),
                package=visible(f"auditor.{run['profile']['id']}"),
                id=str(index),
                timestamp=_timestamp(target["started_at"] if target else run["started_at"]),
                hostname=visible(name),
                tests=str(len(results)),
                failures=str(counts["fail"]),
                errors=str(counts["error"]),
                skipped=str(counts["skip"] + counts["manual"] + counts["waived"]),
                time=_seconds(target["started_at"], target["finished_at"]) if target else "0",
            )
            score = document["score"]["by_target"].get(name, {})
            properties = ET.SubElement(suite, "properties")
            for key, value in (
                ("auditor.run", run["id"]),
                ("auditor.profile", f"{run['profile']['id']} {run['profile']['version']}"),
                ("auditor.target.url", target["url"] if target else ""),
                ("auditor.target.kind", target["kind"] if target else "attestation"),
                ("auditor.score", _fmt(score.get("value"))),
                ("auditor.grade", score.get("grade") or "n/a"),
                ("auditor.coverage", _fmt(score.get("coverage"), "%")),
                *(
                    [("auditor.untrusted", document["untrusted"])]
                    if document.get("untrusted")
                    else []
                ),
            ):
                ET.SubElement(properties, "property", name=key, value=visible(str(value)))
            if target and target["error"]:
                ET.SubElement(
                    properties,
                    "property",
                    name="auditor.target.error",
                    value=visible(target["error"]),
                )
            for result, case_name in zip(results, _case_names(results), strict=True):
                self._testcase(suite, result, case_name, checks, evidence)
            out = ET.SubElement(suite, "system-out")
            out.text = visible(
                f"{name}: score {_fmt(score.get('value'))} grade {score.get('grade') or 'n/a'}, "
                f"coverage {_fmt(score.get('coverage'), '%')}"
                + (f"\nnot audited: {target['error']}" if target and target["error"] else "")
            )
            ET.SubElement(suite, "system-err").text = ""
        ET.indent(root, space=" ")
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            + ET.tostring(root, encoding="unicode")
            + "\n"
        )

    @staticmethod
    def _testcase(
        suite: ET.Element,
        result: dict[str, Any],
        name: str,
        checks: dict[str, tuple[dict[str, Any], dict[str, Any]]],
        evidence: dict[tuple[str, str], list[dict[str, Any]]],
    ) -> None:
        subject = subject_text(result)
        case = ET.SubElement(
            suite,
            "testcase",
            name=name,
            classname=one_line(result["check_id"], 200),
            time="0",
        )
        status = result["status"]
        if status == "pass":
            return
        if status in ("skip", "manual", "waived"):
            reason = {"skip": "not applicable", "manual": "needs an attestation"}.get(status, "")
            if exempting_variable(result):
                reason = result["message"]
            if status == "waived":
                waiver = result["waiver"] or {}
                reason = f"waived: {waiver.get('justification', '')}".strip()
                if waiver.get("expires"):
                    reason += f" (expires {waiver['expires']})"
            skipped = ET.SubElement(case, "skipped", message=one_line(reason, 500))
            skipped.text = visible(result["message"])
            return
        element = ET.SubElement(
            case,
            "failure" if status == "fail" else "error",
            message=one_line(result["message"], 1000),
            type=result["severity"] if status == "fail" else "could-not-evaluate",
        )
        control, check = checks.get(result["check_id"], ({}, {}))
        lines = [
            f"check: {result['check_id']} ({result['severity']}), control {result['control_id']}",
            f"target: {result['target']}",
            f"subject: {subject or 'the target itself'}"
            + (f" at {result['subject']['location']}" if result["subject"]["location"] else ""),
            f"message: {result['message']}",
        ]
        lines += [
            f"observed {key}: {one_line(json.dumps(value, ensure_ascii=False, default=str), 500)}"
            for key, value in result["observed"].items()
        ]
        lines.append(f"expected: {result['expected']}")
        if result["remediation"]:
            lines.append(f"remediation: {result['remediation']}")
        lines += reference_lines(check.get("references") or control.get("references") or {})
        lines += [f"evidence: {line}" for line in evidence_lines(result, evidence, 200)]
        element.text = visible("\n".join(lines))
