"""Markdown: a short summary for a pull-request comment (score, grade, coverage, what fails).

Target text is escaped for CommonMark and GitHub: every character that can open inline
markup, HTML, an entity, a table cell or an autolink is backslash-escaped (so `<script>`,
`|`, `[link](...)`, `*` and `https://...` stay literal text), text is kept on one line, and
`@` gets a zero-width space after it so a target cannot mention people.
"""

from __future__ import annotations

import re
from typing import Any

from auditor.reporters import view
from auditor.reporters.exemptions import exemptions
from auditor.sanitize import one_line

TOP = 10
TARGETS = 15
# Everything that can open inline Markdown or HTML, a table cell, an entity or an autolink.
_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()<>#+!|~&:.])")


def md(text: Any, limit: int = 200) -> str:
    """`text` as literal Markdown inline text on one line."""
    escaped = _PUNCTUATION.sub(r"\\\1", one_line(str(text), limit))
    return escaped.replace("@", "@\u200b")


def _score(value: float | None, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:.1f}{suffix}"


class MarkdownReporter:
    def render(self, document: dict[str, Any]) -> str:
        report = view.build(document)
        run, overall = report.run, report.overall
        grade = overall["grade"] or "n/a"
        lines = [
            f"## auditor: {md(report.profile['title'])}",
            "",
            f"**Score {_score(overall['value'])}** · grade **{grade}** · coverage "
            f"**{_score(overall['coverage'], '%')}** · "
            + (
                ", ".join(md(t.name, 80) for t in report.targets)
                if len(report.targets) <= 3
                else f"{len(report.targets)} targets"
            ),
            "",
        ]
        if report.low_coverage:
            lines += [
                f"> **Low coverage.** {overall['counts'].get('error', 0)} results could not be "
                f"evaluated and {overall['counts'].get('manual', 0)} manual controls are "
                "unanswered: the score speaks only for what could be evaluated.",
                "",
            ]
        if document.get("untrusted"):
            lines += [f"> **UNTRUSTED EVIDENCE:** {md(document['untrusted'], 300)}", ""]
        if not run["complete"]:
            lines += ["> **Incomplete run:** it was interrupted before every target finished.", ""]
        counts = overall["counts"]
        lines.append(
            "Results: "
            + " · ".join(f"{counts[s]} {s}" for s in view.STATUSES if counts.get(s))
            + "\n"
        )
        lines += ["| section | score | grade | coverage |", "|---|---:|:---:|---:|"]
        for section in report.sections:
            score = section.score or {}
            if not section.controls and not score:
                continue
            lines.append(
                f"| {md(section.title)} | {_score(score.get('value'))} | "
                f"{score.get('grade') or '–'} | {_score(score.get('coverage'), '%')} |"
            )
        lines.append("")
        if report.top_checks:
            lines += [
                "### Top failing checks",
                "",
                "| severity | check | control | failing | targets |",
                "|---|---|---|---:|---:|",
            ]
            for check in report.top_checks[:TOP]:
                lines.append(
                    f"| {check.severity} | {md(check.check['title'])} ({md(check.id, 120)}) | "
                    f"{md(check.control_id)} | {check.failing} | {check.failing_targets} |"
                )
            lines.append("")
        else:
            lines += ["No check failed.", ""]
        errors = [t for t in report.targets if t.error]
        if errors:
            lines += ["### Not audited", ""]
            lines += [
                f"- **{md(t.name)}**: not audited: {md(t.error or '', 300)}"
                for t in errors[:TARGETS]
            ]
            lines.append("")
        exempt = exemptions(document["results"])
        if exempt:
            lines += ["### Exemptions", "", "| exempt by | results | checks | subjects |"]
            lines.append("|---|---:|---:|---|")
            for exemption in exempt:
                shown = ", ".join(md(s, 120) for s in exemption.subjects)
                more = f" and {exemption.more_subjects} more" if exemption.more_subjects else ""
                lines.append(
                    f"| {md(exemption.variable)} | {exemption.results} | "
                    f"{len(exemption.checks)} | {shown}{more} |"
                )
            lines.append("")
        if len(report.targets) > 1:
            worst = report.target_rows[:TARGETS]
            title = "### Targets" + (
                f" (the {TARGETS} lowest)" if len(report.targets) > TARGETS else ""
            )
            lines += [title, "", "| target | score | grade | coverage |", "|---|---:|:---:|---:|"]
            for name, target_score, _ in worst:
                score = target_score or {}
                lines.append(
                    f"| {md(name)} | {_score(score.get('value'))} | {score.get('grade') or '–'} | "
                    f"{_score(score.get('coverage'), '%')} |"
                )
            lines.append("")
        lines.append(
            f"<sub>auditor {md(run['tool_version'])} · profile {md(report.profile['id'])} "
            f"{md(report.profile['version'])} · run {md(run['id'])} · finished "
            f"{md(run['finished_at'])}</sub>"
        )
        return "\n".join(lines) + "\n"
