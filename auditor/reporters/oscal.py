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
from dataclasses import dataclass, field
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


@dataclass
class _Observed:
    """What the observations pass gathers for the findings and the back matter."""

    observations: list[dict[str, Any]] = field(default_factory=list)
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_control: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    control_counts: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))


def _targets(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The document's targets by name, plus a stand-in for results of no target (attested
    controls are about the organisation)."""
    run = document["run"]
    targets = {t["name"]: t for t in document["targets"]}
    for result in document["results"]:
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
    return targets


def _findings(document: dict[str, Any], observed: _Observed, tool: str) -> list[dict[str, Any]]:
    """One finding per control of the profile, evaluated or not."""
    run_id, profile_id = document["run"]["id"], document["run"]["profile"]["id"]
    findings = []
    scores = document["score"]["by_control"]
    for control in document["controls"]:
        score = scores.get(control["id"], {})
        # the scored counts include the checks of targets not audited (not in `results`)
        counts = Counter(score.get("counts") or observed.control_counts.get(control["id"], {}))
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
        if observed.by_control.get(control["id"]):
            finding["related-observations"] = [
                {"observation-uuid": o} for o in observed.by_control[control["id"]]
            ]
        findings.append(finding)
    return findings


def _assessment(
    document: dict[str, Any], targets: dict[str, dict[str, Any]], tool: str
) -> dict[str, Any]:
    """The one result of the run, without its findings and observations."""
    run = document["run"]
    run_id, profile_id = run["id"], run["profile"]["id"]
    overall = document["score"]["overall"]
    return {
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
            _prop("coverage", overall["coverage"] if overall["coverage"] is not None else "n/a"),
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
            "inventory-items": [OscalReporter._item(t) for t in targets.values()],
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
    }


def _plan_resource(run: dict[str, Any], plan: str) -> dict[str, Any]:
    """The back-matter resource the assessment plan import points at."""
    profile = run["profile"]
    return {
        "uuid": plan,
        "title": visible(f"Assessment plan: {profile['title']} {profile['version']}"),
        "description": visible(
            f"auditor profile {profile['id']} {profile['version']}"
            + (f" with overlays {', '.join(profile['overlays'])}" if profile["overlays"] else "")
            + f". Control ids are <profile id>-<control id>, e.g. "
            f"{oscal_control_id(profile['id'], '4.5.1')}, as in `auditor profiles export`."
        ),
        "props": [_prop("profile-id", profile["id"])],
    }


class OscalReporter:
    def render(self, document: dict[str, Any]) -> str:
        run = document["run"]
        run_id = run["id"]
        tool = _uuid("component", "auditor")
        plan = _uuid("plan", run["profile"]["id"], run["profile"]["version"])
        targets = _targets(document)
        observed = self._observations(document, targets, tool)
        assessment = _assessment(document, targets, tool)
        findings = _findings(document, observed, tool)
        assessment["findings"] = findings
        if observed.observations:
            assessment["observations"] = observed.observations
        if not findings:
            del assessment["findings"]
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
                "back-matter": {
                    "resources": [_plan_resource(run, plan), *observed.resources.values()]
                },
            }
        }
        return json.dumps(ar, indent=1, ensure_ascii=False) + "\n"

    def _observations(
        self, document: dict[str, Any], targets: dict[str, dict[str, Any]], tool: str
    ) -> _Observed:
        """One observation per check and target, and the evidence resources they link."""
        observed = _Observed()
        pairs: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for result in document["results"]:
            pairs[(result["check_id"], result["target"])].append(result)
        checks = checks_by_id(document)
        for (check_id, target_name), results in pairs.items():
            counts = Counter(r["status"] for r in results)
            first = results[0]
            observed.control_counts[first["control_id"]].update(counts)
            observation_id = _uuid("observation", document["run"]["id"], check_id, target_name)
            observed.by_control[first["control_id"]].append(observation_id)
            evidence = self._evidence(document, target_name, results, observed.resources)
            observation = self._observation(
                document, results, counts, observation_id, tool, manual=check_id not in checks
            )
            observation["collected"] = (
                targets[target_name]["finished_at"] or document["run"]["finished_at"]
            )
            if evidence:
                observation["relevant-evidence"] = evidence
            lines = self._subject_lines(results)
            if lines:
                observation["remarks"] = visible("\n".join(lines))
            observed.observations.append(observation)
        return observed

    def _evidence(
        self,
        document: dict[str, Any],
        target_name: str,
        results: list[dict[str, Any]],
        resources: dict[str, dict[str, Any]],
    ) -> list[dict[str, Any]]:
        """The relevant evidence of one observation; each new fact becomes a resource."""
        evidence_index = facts_by_hash(document)
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
        return evidence

    def _observation(
        self,
        document: dict[str, Any],
        results: list[dict[str, Any]],
        counts: Counter[str],
        observation_id: str,
        tool: str,
        *,
        manual: bool,
    ) -> dict[str, Any]:
        first = results[0]
        target_name = first["target"]
        profile_id = document["run"]["profile"]["id"]
        return {
            "uuid": observation_id,
            "title": visible(f"{first['title']} on {target_name}"),
            "description": visible(self._summary(results, counts)),
            "props": [
                _prop("check-id", first["check_id"]),
                _prop("control-id", oscal_control_id(profile_id, first["control_id"])),
                _prop("severity", first["severity"]),
                *(_prop(f"results-{status}", n) for status, n in sorted(counts.items())),
            ],
            "methods": ["INTERVIEW"] if manual else ["TEST"],
            "types": ["finding"] if counts["fail"] or counts["error"] else ["control-objective"],
            "origins": [{"actors": [{"type": "tool", "actor-uuid": tool}]}],
            "subjects": [
                {
                    "subject-uuid": _uuid("target", target_name),
                    "type": "inventory-item",
                    "title": visible(target_name),
                }
            ],
        }

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
