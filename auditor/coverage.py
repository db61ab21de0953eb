"""The coverage matrix: for each control, how it is decided and by which checks.

Generated from the profile (docs/coverage.md is this module's output, checked by a test), so
the statement of what auditor checks can never drift from what it does.
"""

from __future__ import annotations

import re
from typing import Any

from auditor.model import References, TargetKind
from auditor.profiles import LoadedProfile


def _union(refs: list[References], key: str) -> list[str]:
    values = {v for ref in refs for v in getattr(ref, key)}
    return sorted(
        values, key=lambda v: [int(p) if p.isdigit() else p for p in re.split(r"[.()\-]", v) if p]
    )


def matrix(profile: LoadedProfile) -> list[dict[str, Any]]:
    """One row per control, in profile order."""
    rows = []
    for entry in profile.controls:
        control = entry.control
        refs = [control.references, *(c.references for c in control.checks)]
        per_kind = {
            str(kind): sum(1 for c in control.checks if c.target is kind) for kind in TargetKind
        }
        rows.append(
            {
                "id": control.id,
                "title": control.title,
                "section": entry.section.id,
                "coverage": str(control.coverage),
                "coverage_note": control.coverage_note,
                "checks_by_target": per_kind,
                "checks": [c.id for c in control.checks],
                "attestation": control.attestation.question if control.attestation else None,
                "nist_800_53": _union(refs, "nist_800_53"),
                "cis_docker": _union(refs, "cis_docker"),
                "cis_kubernetes": _union(refs, "cis_kubernetes"),
                "cis_linux": _union(refs, "cis_linux"),
                "pss": _union(refs, "pss"),
            }
        )
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(profile: LoadedProfile) -> str:
    """docs/coverage.md."""
    rows = matrix(profile)
    kinds = [str(k) for k in TargetKind]
    lines = [
        f"# Coverage of {profile.title}",
        "",
        f"Generated from profile `{profile.id}` {profile.version} by "
        f"`auditor profiles coverage {profile.id} -o docs/coverage.md`; a test fails when this "
        "page is stale.",
        "",
        "`automated`: the checks decide the control. `partial`: checks decide part of it and an "
        "attestation the rest. `manual`: attestation only. `not-applicable`: with the reason.",
        "",
        "| control | coverage | " + " | ".join(kinds) + " | NIST SP 800-53 | CIS Docker | "
        "CIS Kubernetes | CIS Linux | PSS |",
        "|---|---|" + "---|" * len(kinds) + "---|---|---|---|---|",
    ]
    for row in rows:
        counts = " | ".join(str(row["checks_by_target"][k] or "") for k in kinds)
        lines.append(
            f"| {row['id']} {_cell(row['title'])} | {row['coverage']} | {counts} | "
            f"{', '.join(row['nist_800_53'])} | {', '.join(row['cis_docker'])} | "
            f"{', '.join(row['cis_kubernetes'])} | {', '.join(row['cis_linux'])} | "
            f"{', '.join(row['pss'])} |"
        )
    lines += ["", "## Controls in detail", ""]
    for row in rows:
        lines.append(f"### {row['id']} {row['title']} ({row['coverage']})")
        lines.append("")
        if row["coverage_note"]:
            lines += [_cell(row["coverage_note"]), ""]
        if row["attestation"]:
            lines += [f"Attestation: {_cell(row['attestation'])}", ""]
        if row["checks"]:
            lines.append("Checks: " + ", ".join(f"`{c}`" for c in row["checks"]))
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"
