"""Markdown: a pull-request comment, short whatever the size of the run, and inert."""

from __future__ import annotations

import copy
import re

from report_docs import fixture_document

from auditor.reporters.markdown import MarkdownReporter, md


def test_summary_has_score_grade_coverage_and_top_failures():
    doc = fixture_document()
    text = MarkdownReporter().render(doc)
    overall = doc["score"]["overall"]
    assert f"**Score {overall['value']:.1f}** · grade **{overall['grade']}**" in text
    assert f"coverage **{overall['coverage']:.1f}%**" in text
    assert "### Top failing checks" in text
    assert "### Not audited" in text
    assert len(text) < 20_000  # GitHub comments stop at 65,536 characters


def test_target_text_stays_text():
    assert md("<script>x</script>") == "\\<script\\>x\\</script\\>"
    assert md("a|b [l](http://x) *b* `c`") == "a\\|b \\[l\\]\\(http\\://x\\) \\*b\\* \\`c\\`"
    assert md("@team") == "@\u200bteam"
    assert md("line\nbreak\x1b[0m") == "line break\\\\x1b\\[0m"


def test_hostile_target_name_in_the_table():
    doc = copy.deepcopy(fixture_document())
    for target in doc["targets"]:
        old = target["name"]
        target["name"] = f"{old}|<img src=x onerror=alert(1)>"
        doc["score"]["by_target"][target["name"]] = doc["score"]["by_target"].pop(old)
        for result in doc["results"]:
            if result["target"] == old:
                result["target"] = target["name"]
    text = MarkdownReporter().render(doc)
    ours = text.replace("<sub>", "").replace("</sub>", "")
    assert not re.search(r"(?<!\\)<", ours)  # every < from a target is escaped
    assert "\\<img src=x onerror=alert\\(1\\)\\>" in text
    for line in text.splitlines():
        if line.startswith("| ") and "example" in line:
            assert line.count(" | ") == 3  # the pipe inside the name did not add a cell
