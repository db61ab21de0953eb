"""HTML and PDF reports end with "how this was judged": the profile, its digest, its overlays
and the variables in force (per target where the inventory changed them), from the document's
`judged_with`, with target-controlled text escaped."""

from __future__ import annotations

import copy
import subprocess

from report_docs import fixture_document, host_document

from auditor.reporters.html import HtmlReporter
from auditor.reporters.pdf import PdfReporter

DIGEST = "sha256:" + "ab" * 32


def _judged(doc):
    doc = copy.deepcopy(doc)
    doc["judged_with"] = {
        "profile": {"id": "nist-800-190", "version": "2026.11"},
        "digest": DIGEST,
        "overlays": ["org/overlay.yaml"],
        "variables": {"max_package_list_age_days": 7, "allowed_permitrootlogin": ["no"]},
        "target_variables": {"web-<script>1": {"max_package_list_age_days": 3}},
    }
    return doc


def test_the_html_report_says_how_it_was_judged():
    html = HtmlReporter().render(_judged(fixture_document()))
    section = html[html.index('<section id="judged">') :]
    section = section[: section.index("</section>")]
    for shown in (DIGEST, "org/overlay.yaml", "max_package_list_age_days", "[&#34;no&#34;]"):
        assert shown in section, shown
    assert "web-&lt;script&gt;1" in section and "<script>1" not in section
    assert 'href="#judged"' in html


def test_an_older_document_says_it_does_not_know():
    doc = copy.deepcopy(fixture_document())
    doc.pop("judged_with", None)
    html = HtmlReporter().render(doc)
    assert "does not say which variables judged it" in html


def test_the_pdf_has_the_appendix(tmp_path):
    path = tmp_path / "report.pdf"
    path.write_bytes(PdfReporter().render(_judged(host_document())))
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "Appendix F. How this was judged" in text
    assert DIGEST[:30] in text.replace("\n", "") and "max_package_list_age_days" in text
