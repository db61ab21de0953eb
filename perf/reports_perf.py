"""Report rendering time and size on large runs; writes its table to perf/RESULTS.md.

    python perf/reports_perf.py            # measure, print, and append to perf/RESULTS.md
    python perf/reports_perf.py --no-write # measure and print only

The runs are synthetic but go through the real pipeline: facts are made with new_fact
(redacted and hashed), results are Result records, and the document comes from
auditor.document.build (the real scoring). The profile is synthetic too, so the numbers
do not move when the shipped profile grows: 6 sections of SP 800-190, 150 checks.

Two runs:
- "10k results": 20 targets (hosts, Docker daemons, clusters) x 50 checks x 10 subjects.
- "100 x 150": 100 targets x 150 checks, one subject each (the target itself).
Outcomes are drawn with a fixed seed; a failing check tends to fail the same way on many
targets (as it does in real fleets), and a third of the checks name the subject in their
message, so identical-finding grouping gets both easy and hard cases.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("AUDITOR_FINGERPRINT_KEY", "auditor-perf")

from auditor import document  # noqa: E402
from auditor.facts import new_fact  # noqa: E402
from auditor.model import (  # noqa: E402
    Check,
    Control,
    Coverage,
    References,
    Result,
    Run,
    SectionInfo,
    Severity,
    Status,
    Subject,
    TargetKind,
    TargetRecord,
)
from auditor.profiles import ControlEntry, LoadedProfile  # noqa: E402

SECTIONS = [
    ("image", "Images (3.1 / 4.1)", TargetKind.DOCKER),
    ("registry", "Image registries (3.2 / 4.2)", TargetKind.DOCKER),
    ("orchestrator", "Orchestrators (3.3 / 4.3)", TargetKind.KUBERNETES),
    ("container", "Containers (3.4 / 4.4)", TargetKind.DOCKER),
    ("host-os", "Host operating systems (3.5 / 4.5)", TargetKind.HOST),
    ("hardware", "Hardware countermeasures (4.6)", TargetKind.HOST),
]
SEVERITY_MIX = [Severity.CRITICAL, Severity.HIGH, Severity.HIGH, Severity.MEDIUM, Severity.LOW]
STARTED = "2026-11-22T08:00:00.000Z"
FINISHED = "2026-11-22T08:04:10.000Z"


def synthetic_profile(checks: int, controls_per_section: int = 5) -> LoadedProfile:
    """A profile with exactly `checks` checks spread over the six sections of the guide."""
    slots = [(s, c) for s in range(len(SECTIONS)) for c in range(controls_per_section)]
    by_slot: dict[tuple[int, int], list[Check]] = {slot: [] for slot in slots}
    for number in range(checks):
        s_index, c_index = slots[number % len(slots)]
        section_id, _, kind = SECTIONS[s_index]
        control_id = f"4.{s_index + 1}.{c_index + 1}"
        by_slot[(s_index, c_index)].append(
            Check.model_validate(
                {
                    "id": f"{kind.value}.perf.{section_id}.check-{number:03d}",
                    "title": f"Synthetic check {number} of {section_id} holds",
                    "severity": SEVERITY_MIX[number % len(SEVERITY_MIX)],
                    "target": kind,
                    "assert": "true",
                    "expected": "the setting is configured as the benchmark says",
                    "remediation": "Change the setting as the benchmark says, then re-run the "
                    "audit to confirm the fix.",
                    "references": References(
                        nist_800_190=[control_id], nist_800_53=["CM-6", "CM-7"]
                    ),
                }
            )
        )
    entries = [
        ControlEntry(
            Control(
                id=f"4.{s_index + 1}.{c_index + 1}",
                title=f"Synthetic control 4.{s_index + 1}.{c_index + 1}",
                text="Keep the component configured to the hardening baseline and check it "
                "continuously; deviations are findings.",
                coverage=Coverage.AUTOMATED,
                checks=by_slot[(s_index, c_index)],
                references=References(nist_800_53=["CM-6"]),
            ),
            SectionInfo(id=SECTIONS[s_index][0], title=SECTIONS[s_index][1]),
            "synthetic",
        )
        for s_index, c_index in slots
    ]
    return LoadedProfile(
        id="nist-800-190",
        title="NIST SP 800-190 (synthetic performance profile)",
        version="perf",
        description="",
        variables={},
        variable_descriptions={},
        sections=tuple(SectionInfo(id=s, title=t) for s, t, _ in SECTIONS),
        controls=tuple(entries),
        checks=(),
        sources=(),
    )


def synthetic_run(profile: LoadedProfile, targets: int, subjects: int, seed: int = 11) -> Run:
    """A finished run of `targets` targets; every check judges `subjects` subjects on each."""
    rng = random.Random(seed)
    checks = [(e.control.id, c) for e in profile.controls for c in e.control.checks]
    fail_rate = {c.id: rng.choice([0.0, 0.0, 0.05, 0.3, 0.9]) for _, c in checks}
    names_subject = {c.id: rng.random() < 0.33 for _, c in checks}
    kinds = list(TargetKind)
    records: list[TargetRecord] = []
    results: list[Result] = []
    for t in range(targets):
        kind = kinds[t % len(kinds)]
        name = f"{kind.value}-{t:03d}.prod.example.net"
        facts = tuple(
            new_fact(
                f"{kind.value}.fact{f}",
                name,
                {
                    "items": [{"name": f"item-{i}", "value": rng.randint(0, 9)} for i in range(20)],
                    "env": ["DB_PASSWORD=synthetic-secret", "PATH=/usr/bin"],
                },
                source=f"GET /v1.45/fact{f}?all=1"
                if kind is not TargetKind.HOST
                else f"/bin/sh -s (section fact{f})",
                status=0 if kind is TargetKind.HOST else 200,
                collected_at=STARTED,
            )
            for f in range(8)
        )
        records.append(
            TargetRecord(name, f"{kind.value}://{name}", kind, STARTED, FINISHED, facts=facts)
        )
        for control_id, check in checks:  # every check on every target: the volume is the point
            evidence = (facts[zlib.crc32(check.id.encode()) % len(facts)].sha256,)
            for s in range(subjects):
                subject = (
                    Subject("host" if kind is TargetKind.HOST else "target", name)
                    if subjects == 1
                    else Subject("container", f"app-{s:02d}", id=f"{s:064x}"[:12])
                )
                roll = rng.random()
                if roll < fail_rate[check.id]:
                    status = Status.FAIL
                elif roll < fail_rate[check.id] + 0.03:
                    status = Status.ERROR
                elif roll > 0.97:
                    status = Status.SKIP
                elif roll > 0.96:
                    status = Status.WAIVED
                else:
                    status = Status.PASS
                message = check.title
                if status is Status.FAIL:
                    message = (
                        f"{subject.name} has the setting at {rng.choice(['0', '1'])}"
                        if names_subject[check.id]
                        else "the setting is not configured as the benchmark says"
                    )
                elif status is Status.ERROR:
                    message = "could not collect the fact: permission denied"
                waiver = None
                if status is Status.WAIVED:
                    waiver = {
                        "justification": "accepted until the platform migration",
                        "owner": "platform-team",
                        "expires": "2027-03-31",
                        "status": "fail",
                    }
                results.append(
                    Result(
                        check_id=check.id,
                        control_id=control_id,
                        title=check.title,
                        severity=check.severity,
                        target=name,
                        subject=subject,
                        status=status,
                        message=message,
                        observed={"setting": 0 if status is Status.FAIL else 1},
                        expected=check.expected,
                        evidence=evidence,
                        remediation=check.remediation,
                        waiver=waiver,
                    )
                )
    return Run(
        id="00000000-perf-4000-8000-000000000000",
        tool_version="perf",
        profile_id=profile.id,
        profile_version=profile.version,
        started_at=STARTED,
        finished_at=FINISHED,
        targets=tuple(records),
        results=tuple(results),
    )


def ten_thousand() -> dict[str, Any]:
    """The 10,000-result document."""
    profile = synthetic_profile(50)
    return document.build(synthetic_run(profile, targets=20, subjects=10), profile)


def fleet() -> dict[str, Any]:
    """The 100 targets x 150 checks document."""
    profile = synthetic_profile(150)
    return document.build(synthetic_run(profile, targets=100, subjects=1), profile)


def _timed(fmt: str, doc: dict[str, Any], repeat: int) -> tuple[float, float, int, str]:
    """Best wall time of `repeat` renders, the CPU time of that render, size, and notes.

    CPU time is reported beside wall time because this machine is shared: under load the
    wall time of a single-threaded renderer stretches while its CPU time does not."""
    from auditor.reporters import reporter_for

    best: tuple[float, float, bytes] | None = None
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        content = reporter_for(fmt).render(doc)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        data = content if isinstance(content, bytes) else content.encode("utf-8")
        if best is None or wall < best[0]:
            best = (wall, cpu, data)
    assert best is not None
    wall, cpu, data = best
    extra = ""
    if fmt == "pdf":
        import subprocess
        import tempfile

        with tempfile.NamedTemporaryFile(suffix=".pdf") as handle:
            handle.write(data)
            handle.flush()
            info = subprocess.run(
                ["pdfinfo", handle.name], capture_output=True, text=True, timeout=60, check=True
            ).stdout
        extra = next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:"))
        extra += " pages"
    return wall, cpu, len(data), extra


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    parser.add_argument("--repeat", type=int, default=3, help="renders per format (PDF: 2)")
    args = parser.parse_args()
    rows = []
    load_before = os.getloadavg()[0]
    for label, build, formats in (
        ("10k results", ten_thousand, ("html", "pdf", "json", "junit", "sarif", "oscal", "csv",
                                       "markdown")),
        ("100 targets x 150 checks", fleet, ("html", "pdf")),
    ):  # fmt: skip
        doc = build()
        results = len(doc["results"])
        for fmt in formats:
            wall, cpu, size, extra = _timed(fmt, doc, args.repeat if fmt != "pdf" else 2)
            rows.append((label, results, fmt, wall, cpu, size, extra))
            sys.stdout.write(
                f"{label:26} {results:6} {fmt:9} {wall:7.2f} s {cpu:7.2f} s cpu "
                f"{size / 1e6:7.2f} MB {extra}\n"
            )
            sys.stdout.flush()
    load = f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    sys.stdout.write(load + "\n")
    if args.no_write:
        return
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    lines = [
        "",
        f"## Reports ({stamp}, this box: {os.cpu_count()} cores, {platform.machine()}, "
        f"Python {platform.python_version()}, WeasyPrint {_weasyprint_version()})",
        "",
        "`python perf/reports_perf.py`: synthetic runs built through the real document and "
        "scoring code (perf/reports_perf.py says how). Budgets (issue 5): HTML for 10,000 "
        "results < 3 s and < 15 MB; PDF for the same run < 30 s. Time is the best of "
        f"{args.repeat} renders (2 for PDF); CPU is that render's process time. Measured with "
        f"other test suites running on the box ({load}).",
        "",
        "| run | results | format | time | CPU | size | notes |",
        "|---|---:|---|---:|---:|---:|---|",
    ]
    for label, results, fmt, wall, cpu, size, extra in rows:
        lines.append(
            f"| {label} | {results} | {fmt} | {wall:.2f} s | {cpu:.2f} s | {size / 1e6:.2f} MB "
            f"| {extra} |"
        )
    with (ROOT / "perf" / "RESULTS.md").open("a", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def _weasyprint_version() -> str:
    import weasyprint

    return str(weasyprint.__version__)


if __name__ == "__main__":
    main()
