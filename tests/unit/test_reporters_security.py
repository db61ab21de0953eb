"""Everything from a target is hostile: every format stays valid and inert, and a secret the
facts carried (redacted by new_fact) appears in none of them.

The document comes from the real engine: a host whose name, services, sockets, processes and
files hold markup, a template expression, quotes, a spreadsheet formula and control
characters, and whose facts carry DB_PASSWORD=hunter2-planted.
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import unicodedata
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
import xmlschema
from html_check import parse
from report_docs import FORMULA, HOSTILE, INVISIBLE, SCRIPT, SECRET, hostile_document
from schemas import oscal_errors

from auditor.reporters import FORMATS, reporter_for
from auditor.reporters.markdown import md
from auditor.resources import templates_dir

SCHEMAS = Path(__file__).resolve().parents[1] / "data" / "schemas"
RAW_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@pytest.fixture(scope="module")
def document():
    return hostile_document()


@pytest.fixture(scope="module")
def outputs(document):
    """Each format's output: text, but the PDF's bytes (JSON is written as UTF-8 bytes)."""
    rendered = {fmt: reporter_for(fmt).render(document) for fmt in FORMATS}
    return {
        fmt: out.decode("utf-8") if isinstance(out, bytes) and fmt != "pdf" else out
        for fmt, out in rendered.items()
    }


def test_the_document_really_is_hostile(document):
    assert any(HOSTILE in r["message"] for r in document["results"] if r["status"] == "fail")
    assert any(r["subject"]["name"] == f"{FORMULA}.service" for r in document["results"])
    assert HOSTILE in document["targets"][0]["name"]
    text = json.dumps(document)
    assert "[REDACTED fp=" in text  # new_fact found the planted secret
    assert SECRET not in text


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_no_secret_in_any_format(outputs, fmt):
    content = outputs[fmt]
    if fmt == "pdf":  # look at the text a reader would copy
        content = subprocess.run(
            ["pdftotext", "-", "-"], input=content, capture_output=True, timeout=120, check=True
        ).stdout.decode()
    assert SECRET not in content
    assert "hunter2" not in content


@pytest.mark.parametrize("fmt", sorted(set(FORMATS) - {"pdf", "terminal"}))
def test_no_raw_control_characters(outputs, fmt):
    assert not RAW_CONTROLS.search(outputs[fmt])


def shown_text(outputs, fmt: str) -> str:
    """What a reader gets: the text of the PDF, the output of the others."""
    if fmt == "pdf":
        return subprocess.run(
            ["pdftotext", "-", "-"], input=outputs[fmt], capture_output=True, timeout=120,
            check=True,
        ).stdout.decode()  # fmt: skip
    return outputs[fmt]


# Every format a person reads; `json` is the canonical data and keeps the exact values.
@pytest.mark.parametrize("fmt", sorted(set(FORMATS) - {"json"}))
def test_invisible_formatting_characters_are_made_visible(outputs, fmt):
    text = shown_text(outputs, fmt)
    if fmt == "markdown":  # the one we add ourselves, so that `@name` mentions nobody
        text = text.replace("@\u200b", "@")
    raw = {f"U+{ord(c):04X}" for c in text if unicodedata.category(c) in ("Cf", "Zl", "Zp")}
    assert raw == set()
    if fmt == "markdown":  # the summary cuts target names before the invisible part
        text = md(f"web-{INVISIBLE}")
    unescaped = text.replace("\\\\", "\\")  # JSON and Markdown double a backslash
    for shown in ("\\u202e", "\\u2066", "\\u200b", "\\ufeff", "\\U000e0041"):
        assert shown in unescaped, (fmt, shown)


def test_the_hostile_text_carries_invisible_characters(document):
    assert INVISIBLE in document["targets"][0]["name"]


def test_html_inert(outputs):
    html = outputs["html"]
    page = parse(html)
    assert page.problems == []  # no target text closed or opened an element
    scripts = page.find("script")
    assert len(scripts) == 1
    assert "".join(page.scripts) == (templates_dir() / "report.js").read_text().rstrip("\n")
    assert not page.find("textarea") and not page.find("img")
    assert [e for e in page.elements if any(a.lower().startswith("on") for a in e.attrs)] == []
    assert SCRIPT not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    text = page.all_text
    assert "{{ 7*7 }}" in text  # shown, not evaluated
    assert "\\x1b[31mred\\x00\\x07" in text  # control characters shown as text
    for element in page.elements:  # attribute values from targets stay inside their quotes
        for value in element.attrs.values():
            assert "<script" not in value


def test_pdf_shows_the_text(outputs):
    text = subprocess.run(
        ["pdftotext", "-", "-"], input=outputs["pdf"], capture_output=True, timeout=120, check=True
    ).stdout.decode()
    assert "<script>alert(1)</script>" in text and "{{ 7*7 }}" in text


def test_junit_well_formed_and_valid(outputs):
    root = ET.fromstring(outputs["junit"])
    names = [s.get("name") for s in root.findall("testsuite")]
    assert any(SCRIPT in name for name in names)
    for schema in ("JUnit.xsd", "junit-10.xsd"):
        xmlschema.XMLSchema(str(SCHEMAS / "junit" / schema)).validate(outputs["junit"])


def test_sarif_and_oscal_valid(outputs):
    sarif = json.loads(outputs["sarif"])
    schema = json.loads((SCHEMAS / "sarif-schema-2.1.0.json").read_text())
    assert list(jsonschema.Draft4Validator(schema).iter_errors(sarif)) == []
    # a host's results have no file: they are counted in a note naming the (hostile) target
    notes = sarif["runs"][0]["invocations"][0]["toolExecutionNotifications"]
    assert any(SCRIPT in n["message"]["text"] for n in notes)
    oscal = json.loads(outputs["oscal"])
    assert oscal_errors("assessment-results", oscal) == []
    json.loads(outputs["json"])


def test_csv_cells_neutralised(outputs):
    rows = list(csv.DictReader(io.StringIO(outputs["csv"], newline="")))
    formula = [r for r in rows if r["subject_name"].endswith(f"{FORMULA}.service")]
    assert formula and all(r["subject_name"] == f"'{FORMULA}.service" for r in formula)
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value


def test_markdown_escaped(outputs):
    text = outputs["markdown"]
    assert "\\<script\\>alert\\(1\\)\\</script\\>" in text  # the target name, as text
    ours = text.replace("<sub>", "").replace("</sub>", "")
    assert not re.search(r"(?<!\\)<", ours)
