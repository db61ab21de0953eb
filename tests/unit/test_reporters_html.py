"""The HTML report: one self-contained, well-formed file with the content the issue lists."""

from __future__ import annotations

import base64
import hashlib
import re
from collections import Counter

import pytest
from html_check import parse
from report_docs import fixture_document

from auditor.reporters import view
from auditor.reporters.html import HtmlReporter
from auditor.resources import templates_dir


@pytest.fixture(scope="module")
def html():
    return HtmlReporter().render(fixture_document())


@pytest.fixture(scope="module")
def page(html):
    return parse(html)


def test_well_formed(page):
    assert page.problems == []
    ids = Counter(e.attrs["id"] for e in page.elements if "id" in e.attrs)
    assert [i for i, n in ids.items() if n > 1] == []


def test_self_contained_nothing_loaded_from_anywhere(page, html):
    assert page.find("link") == [] and page.find("img") == [] and page.find("iframe") == []
    assert [e for e in page.elements if "src" in e.attrs] == []
    css = "".join(page.styles)
    assert "@import" not in css and "url(" not in css and "@font-face" not in css
    for anchor in page.find("a"):
        href = anchor.attrs["href"]
        # in-page links, or a profile's reference links (opened by the reader, never loaded)
        assert href.startswith("#") or (
            href.startswith("https://") and anchor.attrs.get("rel") == "noopener noreferrer"
        ), href
    csp = page.find("meta", http_equiv="Content-Security-Policy")[0].attrs["content"]
    assert "default-src 'none'" in csp


def test_the_only_script_is_ours_and_allowed_by_its_hash(page):
    scripts = page.find("script")
    assert len(scripts) == 1 and "src" not in scripts[0].attrs
    body = "".join(page.scripts)
    assert body == (templates_dir() / "report.js").read_text().rstrip("\n")
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    csp = page.find("meta", http_equiv="Content-Security-Policy")[0].attrs["content"]
    assert f"script-src 'sha256-{digest}'" in csp


def test_readable_without_javascript(page):
    # the filter bar is hidden until the script shows it; the content is all there
    assert "hidden" in page.find("form", id="filters")[0].attrs
    assert len(page.find("details")) > 10
    assert [e for e in page.elements if any(a.startswith("on") for a in e.attrs)] == []


def test_content_top_down(page, html):
    doc = fixture_document()
    order = [
        html.index(f'id="{anchor}"')
        for anchor in (
            "status",
            "resources",
            "trends",
            "top-checks",
            "targets",
            "controls",
            "waivers",
            "evidence",
        )
    ]
    assert order == sorted(order)
    text = page.all_text
    overall = doc["score"]["overall"]
    assert f"Overall score {overall['value']:.1f}, grade {overall['grade']}" in text
    assert f"{overall['coverage']:.1f}%" in text
    assert doc["formula"].splitlines()[2].strip() in text  # the formula, one click away
    for section in doc["sections"]:
        assert section["title"] in text
    for target in doc["targets"]:
        assert target["name"] in text
    assert "cannot connect to unreachable.example.net:22" in text  # a target that failed


def test_charts_gauge_bars_trend(page):
    labels = [e.attrs.get("aria-label", "") for e in page.find("svg")]
    assert any(label.startswith("Score ") and "grade" in label for label in labels)
    assert any(label.startswith("Coverage ") for label in labels)
    assert "Score by section" in labels and "Score by target" in labels
    assert any(label.startswith("Score and coverage over the last 4 runs") for label in labels)


def test_every_control_and_check_has_its_place(page):
    doc = fixture_document()
    ids = {(e.tag, e.attrs["id"]) for e in page.elements if "id" in e.attrs}
    for control in doc["controls"]:
        assert ("article", f"control-{control['id']}") in ids, control["id"]
        for check in control["checks"]:
            # a check that judged something has its block; one with no subject in this run
            # is a line in its control's fold
            assert ("div", f"check-{check['id']}") in ids or (
                "li",
                f"check-{check['id']}",
            ) in ids, check["id"]


def test_failing_subjects_with_observed_expected_remediation_and_evidence(page, html):
    doc = fixture_document()
    text = page.all_text
    failing = [r for r in doc["results"] if r["status"] == "fail"]
    for result in failing[:200]:
        assert result["message"] in text
    fact = doc["targets"][0]["facts"][0]
    assert page.find("details", id="ev-t0-0")
    assert fact["sha256"] in text and fact["source"] in text
    assert re.search(r"<pre class=\"excerpt\" id=\"data-[0-9a-f]{16}\">", html)
    assert "observed" in text and "expected" in text and "Remediation" in text


def test_waivers_and_attestations_are_shown(page):
    text = page.all_text
    assert "Break-glass access until the bastion is in place." in text
    assert "bob@example.com" in text and "waivers.yaml:3" in text
    assert "Attested: yes" in text and "carol@example.com" in text
    assert "Needs an attestation" in text


def test_filters_cover_status_severity_target_control_and_search(page):
    form = page.find("form", id="filters")[0]
    assert form
    names = {e.attrs.get("name") for e in page.elements if e.tag in ("input", "select")}
    assert {"status", "severity", "target", "control", "q"} <= names
    buttons = {e.attrs.get("data-action") for e in page.find("button")}
    assert buttons == {"expand", "collapse", "reset"}
    rows = [e for e in page.elements if "row" in e.attrs.get("class", "").split()]
    assert rows and all(e.attrs.get("data-status") in view.STATUSES for e in rows)
    assert all(re.fullmatch(r"(t\d+ ?)+", e.attrs["data-targets"]) for e in rows)


def test_the_first_screen_is_one_row_per_control(page, html):
    doc = fixture_document()
    assert page.find("table", **{"class": "status-table"})
    start = html.index('class="status-table"')
    table = html[start : html.index("</table>", start)]
    for control in doc["controls"]:
        assert f'href="#control-{control["id"]}"' in table, control["id"]
    assert table.count("<tr") == len(doc["controls"]) + 1  # and the header
    assert start < html.index('id="resources"')


def test_resources_and_the_target_not_audited_shown_once(page, html):
    doc = fixture_document()
    failed = next(t for t in doc["targets"] if t["error"])
    resources = html[html.index('id="resources"') : html.index('id="top-checks"')]
    assert resources.count(failed["error"]) == 1
    assert page.find("details", **{"class": "resource-group panel"})
    subject = next(
        r for r in doc["results"] if r["status"] == "fail" and r["subject"]["kind"] == "container"
    )
    assert f"{subject['subject']['kind']} {subject['subject']['name']}" in resources


def test_trends_have_date_and_time_labels(page):
    labels = [e.attrs.get("aria-label", "") for e in page.find("svg")]
    assert "Score by section over the last 4 runs" in labels
    assert "Failing results by severity over the last 4 runs" in labels
    text = page.all_text
    assert "2026-11-10 09:00" in text  # the oldest run, date and time (UTC)
