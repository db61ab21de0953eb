"""OSCAL 1.1.3 assessment results: controls, observations with their evidence, findings.

One result per run. Every control of the profile is a reviewed control and gets a finding,
including those that could not be evaluated (state `not-satisfied`, reason `other`, property
`evaluation: not-evaluated`), so a GRC tool never mistakes silence for compliance. One
observation per check and target summarises its subjects and links the facts it rests on;
each fact's redacted data is a back-matter resource carrying its sha256 and the data itself
(base64 of the canonical JSON the hash was taken over, so the hash can be checked). UUIDs are
version 5, derived from the run id and the item, so the same document renders the same.
"""

from __future__ import annotations

import base64
import json
from collections import Counter, defaultdict
from typing import Any

from auditor.facts import canonical_json
from auditor.oscal import OSCAL_VERSION, PROPERTY_NS, stable_uuid
from auditor.oscal import control_id as control_id_of
from auditor.reporters.common import checks_by_id, facts_by_hash
from auditor.sanitize import one_line, visible

NS = PROPERTY_NS
MAX_SUBJECT_LINES = 50


def oscal_control_id(profile_id: str, control_id: str) -> str:
    """The OSCAL id of a profile control, the same as in the catalog `auditor.oscal` exports:
    `nist-800-190` + `4.5.1` -> `nist-800-190-4.5.1` (OSCAL ids are tokens and must start
    with a letter, which the guide's item numbers do not)."""
    return control_id_of(profile_id, control_id)


def _uuid(*parts: str) -> str:
    return stable_uuid("assessment-results", *parts)


def _prop(name: str, value: Any) -> dict[str, str]:
    """A property in auditor's namespace; OSCAL values are one non-blank line."""
    text = one_line(str(value), 1000) or "-"
    return {"name": name, "ns": NS, "value": text}


def _evaluation(counts: Counter[str]) -> tuple[str, str, str]:
    """(state, reason, evaluation) of a control from the statuses of its results."""
    if counts["fail"]:
        return "not-satisfied", "fail", "evaluated"
    if counts["error"] or counts["manual"]:
        partly = counts["pass"] or counts["skip"] or counts["waived"]
        return "not-satisfied", "other", "partially-evaluated" if partly else "not-evaluated"
    if counts["pass"]:
        return "satisfied", "pass", "evaluated"
    if counts["waived"]:
        return "not-satisfied", "other", "waived"
    if counts["skip"]:
        return "satisfied", "other", "not-applicable"
    return "not-satisfied", "other", "not-evaluated"


def _counted(counts: Counter[str]) -> str:
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))


_EXPLAIN = {
    "evaluated": "Every check of the control was evaluated.",
    "partially-evaluated": "Some results could not be evaluated (collection errors or "
    "unanswered attestations); the control cannot be shown satisfied.",
    "not-evaluated": "No result of this control could be evaluated in this run: no check "
    "applied to the audited targets, the facts could not be collected, or the attestation "
    "was not answered. It is not shown satisfied.",
    "waived": "Every failing result is covered by a waiver (accepted risk).",
    "not-applicable": "No audited subject is in the scope of the control's checks.",
}


class OscalReporter:
    def render(self, document: dict[str, Any]) -> str:
        run = document["run"]
        run_id = run["id"]
        profile_id = run["profile"]["id"]
        tool = _uuid("component", "auditor")
        plan = _uuid("plan", run["profile"]["id"], run["profile"]["version"])
        evidence_index = facts_by_hash(document)
        checks = checks_by_id(document)
        targets = {t["name"]: t for t in document["targets"]}

        pairs: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for result in document["results"]:
            pairs[(result["check_id"], result["target"])].append(result)
            targets.setdefault(
                result["target"],
                {
                    "name": result["target"],
                    "url": "",
                    "kind": "organisation",
                    "error": None,
                    "started_at": run["started_at"],
                    "finished_at": run["finished_at"],
                },
            )

        resources: dict[str, dict[str, Any]] = {}
        observations: list[dict[str, Any]] = []
        by_control: dict[str, list[str]] = defaultdict(list)
        control_counts: dict[str, Counter[str]] = defaultdict(Counter)
        for (check_id, target_name), results in pairs.items():
            target = targets[target_name]
            counts = Counter(r["status"] for r in results)
            first = results[0]
            control_counts[first["control_id"]].update(counts)
            observation_id = _uuid("observation", run_id, check_id, target_name)
            by_control[first["control_id"]].append(observation_id)
            evidence = []
            for digest in sorted({h for r in results for h in r["evidence"]}):
                facts = evidence_index.get((target_name, digest), [])
                resource_id = _uuid("evidence", digest)
                if digest in document["evidence"] and digest not in resources:
                    resources[digest] = self._resource(resource_id, digest, facts, document)
                fact = facts[0] if facts else {"name": "?", "collected_at": "", "source": ""}
                evidence.append(
                    {
                        "href": f"#{resource_id}",
                        "description": visible(
                            f"{fact['name']} collected {fact['collected_at']} by "
                            f"{one_line(fact['source'], 300)}"
                        ),
                        "props": [_prop("sha256", digest), _prop("fact", fact["name"])],
                    }
                )
            manual = check_id not in checks
            observation: dict[str, Any] = {
                "uuid": observation_id,
                "title": visible(f"{first['title']} on {target_name}"),
                "description": visible(self._summary(results, counts)),
                "props": [
                    _prop("check-id", check_id),
                    _prop("control-id", oscal_control_id(profile_id, first["control_id"])),
                    _prop("severity", first["severity"]),
                    *(_prop(f"results-{status}", n) for status, n in sorted(counts.items())),
                ],
                "methods": ["INTERVIEW"] if manual else ["TEST"],
                "types": ["finding"]
                if counts["fail"] or counts["error"]
                else ["control-objective"],
                "origins": [{"actors": [{"type": "tool", "actor-uuid": tool}]}],
                "subjects": [
                    {
                        "subject-uuid": _uuid("target", target_name),
                        "type": "inventory-item",
                        "title": visible(target_name),
                    }
                ],
                "collected": target["finished_at"] or run["finished_at"],
            }
            if evidence:
                observation["relevant-evidence"] = evidence
            lines = self._subject_lines(results)
            if lines:
                observation["remarks"] = visible("\n".join(lines))
            observations.append(observation)

        findings = []
        scores = document["score"]["by_control"]
        for control in document["controls"]:
            score = scores.get(control["id"], {})
            # the scored counts include the checks of targets not audited (not in `results`)
            counts = Counter(score.get("counts") or control_counts.get(control["id"], {}))
            state, reason, evaluation = _evaluation(counts)
            props = [_prop("evaluation", evaluation), _prop("coverage-kind", control["coverage"])]
            for key, name in (("value", "score"), ("grade", "grade"), ("coverage", "coverage")):
                if score.get(key) is not None:
                    props.append(_prop(name, score[key]))
            finding: dict[str, Any] = {
                "uuid": _uuid("finding", run_id, control["id"]),
                "title": visible(f"{control['id']} {control['title']}"),
                "description": visible(control["text"]),
                "props": props,
                "origins": [{"actors": [{"type": "tool", "actor-uuid": tool}]}],
                "target": {
                    "type": "objective-id",
                    "target-id": f"{oscal_control_id(profile_id, control['id'])}_obj",
                    "status": {"state": state, "reason": reason},
                    "remarks": visible(
                        _EXPLAIN[evaluation]
                        + (f" Results: {_counted(counts)}." if counts else "")
                        + (f" {control['coverage_note']}" if control.get("coverage_note") else "")
                    ),
                },
            }
            if by_control.get(control["id"]):
                finding["related-observations"] = [
                    {"observation-uuid": o} for o in by_control[control["id"]]
                ]
            findings.append(finding)

        overall = document["score"]["overall"]
        assessment: dict[str, Any] = {
            "uuid": _uuid("result", run_id),
            "title": visible(f"auditor run {run_id}"),
            "description": visible(
                f"Automated assessment of {len(document['targets'])} target(s) against "
                f"{run['profile']['title']} {run['profile']['version']}: score "
                f"{overall['value']} (grade {overall['grade']}), coverage {overall['coverage']}%."
                + ("" if run["complete"] else " The run was interrupted: results are incomplete.")
            ),
            "start": run["started_at"],
            "end": run["finished_at"],
            "props": [
                _prop("score", overall["value"] if overall["value"] is not None else "n/a"),
                _prop("grade", overall["grade"] or "n/a"),
                _prop(
                    "coverage", overall["coverage"] if overall["coverage"] is not None else "n/a"
                ),
                _prop("complete", str(run["complete"]).lower()),
                *([_prop("untrusted", document["untrusted"])] if document.get("untrusted") else []),
            ],
            "local-definitions": {
                "components": [
                    {
                        "uuid": tool,
                        "type": "software",
                        "title": "auditor",
                        "description": "Policy-as-code compliance auditor (NIST SP 800-190).",
                        "props": [_prop("version", run["tool_version"])],
                        "status": {"state": "operational"},
                    }
                ],
                "inventory-items": [self._item(t) for t in targets.values()],
            },
            "reviewed-controls": {
                "control-selections": [
                    {
                        "description": "Every control of the profile, evaluated or not.",
                        "include-controls": [
                            {"control-id": oscal_control_id(profile_id, c["id"])}
                            for c in document["controls"]
                        ],
                    }
                ]
            },
            "findings": findings,
        }
        if observations:
            assessment["observations"] = observations
        if not findings:
            del assessment["findings"]
        plan_resource = {
            "uuid": plan,
            "title": visible(
                f"Assessment plan: {run['profile']['title']} {run['profile']['version']}"
            ),
            "description": visible(
                f"auditor profile {run['profile']['id']} {run['profile']['version']}"
                + (
                    f" with overlays {', '.join(run['profile']['overlays'])}"
                    if run["profile"]["overlays"]
                    else ""
                )
                + f". Control ids are <profile id>-<control id>, e.g. "
                f"{oscal_control_id(profile_id, '4.5.1')}, as in `auditor profiles export`."
            ),
            "props": [_prop("profile-id", run["profile"]["id"])],
        }
        ar = {
            "assessment-results": {
                "uuid": _uuid("assessment-results", run_id),
                "metadata": {
                    "title": visible(f"{run['profile']['title']}: assessment results"),
                    "last-modified": run["finished_at"],
                    "version": run_id,
                    "oscal-version": OSCAL_VERSION,
                    "props": [_prop("tool", f"auditor {run['tool_version']}")],
                },
                "import-ap": {"href": f"#{plan}"},
                "results": [assessment],
                "back-matter": {"resources": [plan_resource, *resources.values()]},
            }
        }
        return json.dumps(ar, indent=1, ensure_ascii=False) + "\n"

    @staticmethod
    def _item(target: dict[str, Any]) -> dict[str, Any]:
        item: dict[str, Any] = {
            "uuid": _uuid("target", target["name"]),
            "description": visible(
                f"{target['kind']} target {target['name']}"
                + (
                    f" ({target['url']})"
                    if target["url"] and target["url"] != target["name"]
                    else ""
                )
            ),
            "props": [_prop("target-kind", target["kind"]), _prop("target-name", target["name"])],
        }
        if target["error"]:
            item["remarks"] = visible(f"Not audited: {target['error']}")
        return item

    @staticmethod
    def _resource(
        resource_id: str, digest: str, facts: list[dict[str, Any]], document: dict[str, Any]
    ) -> dict[str, Any]:
        data = canonical_json(document["evidence"][digest]).encode("utf-8")
        names = sorted({f["name"] for f in facts}) or ["evidence"]
        return {
            "uuid": resource_id,
            "title": visible(f"{', '.join(names)} (sha256 {digest[:12]})"),
            "description": "Redacted fact data; sha256 is taken over this canonical JSON.",
            "props": [_prop("sha256", digest)],
            "base64": {
                "filename": f"sha256-{digest}.json",
                "media-type": "application/json",
                "value": base64.b64encode(data).decode("ascii"),
            },
        }

    @staticmethod
    def _summary(results: list[dict[str, Any]], counts: Counter[str]) -> str:
        return f"{len(results)} subject(s) judged: {_counted(counts)}."

    @staticmethod
    def _subject_lines(results: list[dict[str, Any]]) -> list[str]:
        """The failing, unevaluable, waived and manual subjects, one line each."""
        lines = []
        notable = [r for r in results if r["status"] not in ("pass", "skip")]
        for result in notable[:MAX_SUBJECT_LINES]:
            subject = result["subject"]
            line = f"{result['status']}: {subject['kind']} {subject['name']}: {result['message']}"
            if result["status"] == "waived" and result["waiver"]:
                line += f" (waiver: {result['waiver'].get('justification', '')})"
            if result.get("attestation"):
                line += f" (attested: {json.dumps(result['attestation'], default=str)})"
            lines.append(one_line(line, 600))
        if len(notable) > MAX_SUBJECT_LINES:
            lines.append(f"... and {len(notable) - MAX_SUBJECT_LINES} more")
        return lines
