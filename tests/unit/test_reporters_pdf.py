"""The PDF: WeasyPrint output checked with poppler (pdfinfo, pdftotext) like a reader would."""

from __future__ import annotations

import re
import subprocess

import pytest
from report_docs import host_document

from auditor.reporters.pdf import PdfReporter


def poppler(*args: str) -> str:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=True).stdout


@pytest.fixture(scope="module")
def pdf(tmp_path_factory):
    path = tmp_path_factory.mktemp("pdf") / "report.pdf"
    path.write_bytes(PdfReporter().render(host_document()))
    return path


@pytest.fixture(scope="module")
def pages(pdf):
    return poppler("pdftotext", "-layout", str(pdf), "-").split("\f")[:-1]


def test_a_real_pdf_with_pages(pdf, pages):
    info = poppler("pdfinfo", str(pdf))
    count = int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))
    assert count == len(pages) >= 8
    assert "Producer:        WeasyPrint" in info
    assert "A4" in info


def test_cover_then_contents_then_summary(pages):
    doc = host_document()
    assert doc["run"]["profile"]["title"].split()[0] in pages[0]
    assert f"Score {doc['score']['overall']['value']:.1f}" in pages[0]
    assert "Contents" in pages[1]
    assert "Executive summary" in pages[2] and "Top risks" in "".join(pages[2:5])


def test_contents_page_numbers_point_at_the_right_pages(pages):
    entry = (
        r"^\s*(Executive summary|Findings by control|Appendix [A-E]\.[^.]*?)\s*\.{3,}\s*(\d+)\s*$"
    )
    entries = re.findall(entry, pages[1], re.M)
    assert len(entries) >= 7
    for title, number in entries:
        assert title.strip() in pages[int(number) - 1], (title, number)


def test_running_header_and_page_x_of_y(pages):
    doc = host_document()
    total = len(pages)
    for number, text in enumerate(pages[1:], start=2):
        assert f"Page {number} of {total}" in text
        assert f"Run {doc['run']['id']}" in text
    assert "Page 1 of" not in pages[0]  # the cover has no running header or footer


def test_findings_passing_appendix_and_evidence(pages):
    doc = host_document()
    text = "\n".join(pages)
    failing = next(r for r in doc["results"] if r["status"] == "fail" and r["evidence"])
    assert failing["check_id"] in text
    assert "Appendix B. Passing checks" in text and "Appendix D. Evidence" in text
    assert failing["evidence"][0] in text.replace("\n", "")
    assert "Waiver register" in text and "Break-glass access" in text


def test_top_risks_give_the_remediation_the_width_it_needs(pdf):
    """The remediation column starts before the middle of the page, so a sentence takes a few
    lines (it had a sixth of the table and broke every few words)."""
    bbox = poppler("pdftotext", "-bbox", "-f", "3", "-l", "5", str(pdf), "-")
    width = float(re.search(r'<page width="([\d.]+)"', bbox).group(1))
    header = re.search(r'<word xMin="([\d.]+)"[^>]*>remediation</word>', bbox, re.I)
    assert header, "no Top risks table on pages 3-5"
    assert float(header.group(1)) < 0.6 * width
