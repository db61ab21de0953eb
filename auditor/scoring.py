"""The score: the only place the formula lives (the README and the HTML report show it).

- A check's ratio on one target = passed / (passed + failed) subjects. Errored, skipped,
  unanswered manual and waived subjects are left out of the ratio and counted apart; errors
  lower coverage instead. A check with no passed or failed subject has no ratio and does
  not count.
- The score of a target, control, section or run = the severity-weighted mean of the ratios
  of the (check, target) pairs under it, x 100, one decimal. Weights: critical 10, high 6,
  medium 3, low 1, info 0. Grade: A >= 90, B >= 80, C >= 70, D >= 60, else F.
- An attested manual control counts as pass (or fail) with the weight of its severity.
- Coverage = the weighted share of subjects that could be evaluated (not `error`, not an
  unanswered `manual`), over the same pairs. So the score says how compliant the evaluated
  part is, and coverage how much of it could be evaluated: a good score with low coverage
  is not good, and --min-coverage and --fail-on (which counts errors) gate on the unknown.
- A target that could not be audited at all has no score of its own (none of its checks has
  a ratio); its checks lower coverage, and reports show it once, as "not audited: reason".
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from auditor.model import Result, Severity, Status

FORMULA = __doc__ or ""
PASS, FAIL, ERROR, MANUAL = map(str, (Status.PASS, Status.FAIL, Status.ERROR, Status.MANUAL))


@dataclass(frozen=True)
class Score:
    """Score, grade and coverage of a set of results, with counts by status."""

    value: float | None  # 0-100, one decimal; None when nothing could be scored
    grade: str | None
    coverage: float | None  # 0-100, one decimal
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ScoreCard:
    """Every score a report shows, computed once."""

    overall: Score
    by_target: dict[str, Score]
    by_control: dict[str, Score]
    by_section: dict[str, Score]
    by_check: dict[str, Score]
    by_severity: dict[str, dict[str, int]]  # severity -> status -> count


def grade(value: float | None) -> str | None:
    if value is None:
        return None
    for letter, floor in (("A", 90), ("B", 80), ("C", 70), ("D", 60)):
        if value >= floor:
            return letter
    return "F"


class _Pair:
    """Counts of one check on one target, and what they score, reckoned once (a pair is in
    five groupings)."""

    __slots__ = ("counts", "weight", "ratio", "share")

    def __init__(self, weight: int) -> None:
        self.weight = weight
        self.counts: dict[str, int] = {}  # by status (a plain dict: a run has many pairs)

    def reckon(self) -> None:
        counts = self.counts
        passed = counts.get(PASS, 0)
        denominator = passed + counts.get(FAIL, 0)
        self.ratio = passed / denominator if denominator else None
        total = sum(counts.values())
        unevaluated = counts.get(ERROR, 0) + counts.get(MANUAL, 0)
        self.share = (total - unevaluated) / total if total else None


def score_pairs(pairs: Iterable[_Pair]) -> Score:
    weighted = covered = weight_sum = coverage_weight = 0.0
    counts: dict[str, int] = {}
    for pair in pairs:
        for status, count in pair.counts.items():
            counts[status] = counts.get(status, 0) + count
        if pair.share is not None:
            covered += pair.weight * pair.share
            coverage_weight += pair.weight
        if pair.ratio is not None:
            weighted += pair.weight * pair.ratio
            weight_sum += pair.weight
    value = round(100 * weighted / weight_sum, 1) if weight_sum else None
    coverage = round(100 * covered / coverage_weight, 1) if coverage_weight else None
    return Score(value=value, grade=grade(value), coverage=coverage, counts=dict(counts))


def score(results: Iterable[Result], section_of: Mapping[str, str]) -> ScoreCard:
    """Score `results`; `section_of` maps control ids to their section ids."""
    pairs: dict[tuple[str, str], _Pair] = {}
    meta: dict[tuple[str, str], tuple[str, str]] = {}
    by_severity: dict[str, Counter[str]] = defaultdict(Counter)
    for result in results:
        key = (result.check_id, result.target)
        pair = pairs.get(key)
        if pair is None:
            pair = pairs[key] = _Pair(result.severity.weight)
            meta[key] = (result.control_id, section_of.get(result.control_id, ""))
        status = str(result.status)
        pair.counts[status] = pair.counts.get(status, 0) + 1
        by_severity[str(result.severity)][status] += 1
    for pair in pairs.values():
        pair.reckon()

    def grouped(key_of: Callable[[tuple[str, str]], str]) -> dict[str, Score]:
        groups: dict[str, list[_Pair]] = defaultdict(list)
        for key, pair in pairs.items():
            groups[key_of(key)].append(pair)
        return {name: score_pairs(group) for name, group in sorted(groups.items())}

    return ScoreCard(
        overall=score_pairs(pairs.values()),
        by_target=grouped(lambda key: key[1]),
        by_control=grouped(lambda key: meta[key][0]),
        by_section=grouped(lambda key: meta[key][1]),
        by_check=grouped(lambda key: key[0]),
        by_severity={s: dict(by_severity.get(s, {})) for s in map(str, Severity)},
    )


def trend_point(scores: Mapping[str, Any]) -> dict[str, Any]:
    """What a trend chart keeps of a run's scores (a ScoreCard as a dict): the score of each
    section, and the failing results (fail or error: unknown is never compliant) of each
    severity."""
    return {
        "sections": {name: s["value"] for name, s in scores["by_section"].items() if name},
        "severities": {
            severity: counts.get("fail", 0) + counts.get("error", 0)
            for severity, counts in scores["by_severity"].items()
        },
    }
