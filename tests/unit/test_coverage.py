"""The coverage matrix is generated from the profile and checked in; it must not go stale."""

from pathlib import Path

from auditor.coverage import matrix, render_markdown
from auditor.profiles import load_profile

DOC = Path(__file__).parents[2] / "docs" / "coverage.md"


def test_docs_coverage_page_is_current():
    expected = render_markdown(load_profile("nist-800-190"))
    assert DOC.read_text() == expected, (
        "docs/coverage.md is stale: auditor profiles coverage nist-800-190 -o docs/coverage.md"
    )


def test_matrix_matches_the_profile():
    profile = load_profile("nist-800-190")
    rows = {row["id"]: row for row in matrix(profile)}
    assert set(rows) == {e.control.id for e in profile.controls}
    for entry in profile.controls:
        row = rows[entry.control.id]
        assert row["checks"] == [c.id for c in entry.control.checks]
        assert sum(row["checks_by_target"].values()) == len(entry.control.checks)
        assert row["coverage"] == str(entry.control.coverage)


def test_html_report_has_the_coverage_matrix(auditor_cli, tmp_path):
    report = Path(__file__).parents[1] / "fixtures" / "scanners" / "trivy-clean.json"
    html = tmp_path / "r.html"
    result = auditor_cli(
        "run", "--quiet", "--no-store", "--import", f"trivy:{report}", "--report", f"html:{html}"
    )
    assert result.code == 0, result.err
    text = html.read_text()
    section = text[text.index('id="coverage-matrix"') :]
    assert "<strong>4.5.4</strong>" in section and "<strong>4.6</strong>" in section
