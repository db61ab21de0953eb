"""The terminal summary: score and coverage, scores by section and target, what failed."""

from __future__ import annotations

from collections import Counter
from typing import Any

from tabulate import tabulate

from auditor.reporters.exemptions import exemptions
from auditor.sanitize import plain

_SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}
_MAX_FAILURES = 25


def _fmt(value: float | None, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:.1f}{suffix}"


class TerminalReporter:
    def render(self, document: dict[str, Any]) -> str:
        run, score = document["run"], document["score"]
        overall = score["overall"]
        lines = [
            *(
                [f"UNTRUSTED EVIDENCE: {plain(document['untrusted'])} (--allow-untrusted)"]
                if document.get("untrusted")
                else []
            ),
            f"auditor {run['tool_version']} - {run['profile']['title']} "
            f"(profile {run['profile']['id']} {run['profile']['version']})",
            f"run {run['id']}  {run['started_at']} .. {run['finished_at']}"
            + ("" if run["complete"] else "  INCOMPLETE"),
            "",
            f"Score {_fmt(overall['value'])} / 100  grade {overall['grade'] or '-'}   "
            f"coverage {_fmt(overall['coverage'], '%')}",
        ]
        if overall["coverage"] is not None and overall["coverage"] < 80:
            lines.append(
                "  (low coverage: errors and unanswered manual controls are not scored; see below)"
            )
        counts = Counter({k: v for k, v in overall["counts"].items() if v})
        lines.append("  " + "  ".join(f"{k} {counts[k]}" for k in sorted(counts)))
        titles = {s["id"]: s["title"] for s in document["sections"]}
        rows = [
            [titles.get(k, k or "-"), _fmt(v["value"]), v["grade"] or "-", _fmt(v["coverage"], "%")]
            for k, v in score["by_section"].items()
        ]
        if rows:
            lines += ["", tabulate(rows, ["section", "score", "grade", "coverage"])]
        target_rows = []
        for target in document["targets"]:
            s = score["by_target"].get(target["name"], {})
            target_rows.append(
                [
                    plain(target["name"]),
                    target["kind"],
                    _fmt(s.get("value")),
                    s.get("grade") or "-",
                    _fmt(s.get("coverage"), "%"),
                    plain(f"not audited: {target['error']}" if target["error"] else ""),
                ]
            )
        if target_rows:
            lines += [
                "",
                tabulate(target_rows, ["target", "kind", "score", "grade", "coverage", ""]),
            ]
        failures = [r for r in document["results"] if r["status"] in ("fail", "error")]
        failures.sort(key=lambda r: (_SEVERITY_ORDER[r["severity"]], r["status"], r["check_id"]))
        if failures:
            rows = [
                [
                    r["severity"],
                    r["status"],
                    r["check_id"],
                    plain(r["target"]),
                    plain(f"{r['subject']['kind']} {r['subject']['name']}"),
                    plain(r["message"], 70),
                ]
                for r in failures[:_MAX_FAILURES]
            ]
            lines += [
                "",
                tabulate(rows, ["severity", "status", "check", "target", "subject", "message"]),
            ]
            if len(failures) > _MAX_FAILURES:
                lines.append(
                    f"... and {len(failures) - _MAX_FAILURES} more failures and errors "
                    "in the full report"
                )
        exempt = exemptions(document["results"])
        if exempt:
            lines += ["", "Exempt by profile variables (skipped, not scored):"]
            for exemption in exempt:
                shown = ", ".join(plain(s) for s in exemption.subjects)
                more = f" and {exemption.more_subjects} more" if exemption.more_subjects else ""
                lines.append(
                    f"  {exemption.variable}: {exemption.results} result(s) of "
                    f"{len(exemption.checks)} check(s) on {shown}{more}"
                )
        return "\n".join(lines) + "\n"
