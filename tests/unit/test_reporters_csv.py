"""CSV: one row per result, every formula neutralised."""

from __future__ import annotations

import copy
import csv
import io

from report_docs import fixture_document

from auditor.reporters.csv import COLUMNS, CsvReporter, neutralise


def rows(text):
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_one_row_per_result_with_remediation_and_evidence():
    doc = fixture_document()
    table = rows(CsvReporter().render(doc))
    assert len(table) == len(doc["results"]) + 1  # + the unreachable target, once
    assert list(table[0]) == list(COLUMNS)
    (down,) = doc["not_audited"]
    assert table[-1]["status"] == "not audited" and table[-1]["target"] == down["target"]
    assert table[-1]["message"] == f"not audited: {down['reason']}"
    assert not [r for r in table[:-1] if r["target"] == down["target"]]
    for row, result in zip(table[:-1], doc["results"], strict=True):
        assert row["check_id"] == result["check_id"] and row["status"] == result["status"]
        assert row["remediation"] == neutralise(result["remediation"])
        for digest in result["evidence"]:
            assert f"sha256:{digest}" in row["evidence"]
    waived = next(r for r in table if r["status"] == "waived")
    assert waived["waiver_justification"].startswith("Break-glass")


def test_formulas_are_neutralised():
    for cell in ("=cmd|' /C calc'!A0", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"):
        assert neutralise(cell).startswith("'")
    assert neutralise("plain") == "plain"
    doc = copy.deepcopy(fixture_document())
    doc["results"][0]["message"] = '=HYPERLINK("http://x")'
    doc["results"][0]["subject"]["name"] = "@evil\x1b[31m"
    row = rows(CsvReporter().render(doc))[0]
    assert row["message"] == '\'=HYPERLINK("http://x")'
    assert row["subject_name"] == "'@evil\\x1b[31m"
