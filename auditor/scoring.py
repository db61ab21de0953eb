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

from collections import defaultdict
from collections.abc import Iterable, Mapping
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
    """Counts of one check on one target, and what they score, reckoned once."""

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


class _Tally:
    """The sums a Score is made of, over a set of pairs. Tallies add up: a check's is the sum
    of its pairs', a control's the sum of its checks', and so on up to the run's."""

    __slots__ = ("weighted", "weight_sum", "covered", "coverage_weight", "counts")

    def __init__(self) -> None:
        self.weighted = self.weight_sum = self.covered = self.coverage_weight = 0.0
        self.counts: dict[str, int] = {}

    def add_pair(self, pair: _Pair) -> None:
        self._add_counts(pair.counts)
        if pair.share is not None:
            self.covered += pair.weight * pair.share
            self.coverage_weight += pair.weight
        if pair.ratio is not None:
            self.weighted += pair.weight * pair.ratio
            self.weight_sum += pair.weight

    def add(self, other: _Tally) -> None:
        self._add_counts(other.counts)
        self.covered += other.covered
        self.coverage_weight += other.coverage_weight
        self.weighted += other.weighted
        self.weight_sum += other.weight_sum

    def _add_counts(self, counts: Mapping[str, int]) -> None:
        mine = self.counts
        for status, count in counts.items():
            mine[status] = mine.get(status, 0) + count

    def score(self) -> Score:
        value = round(100 * self.weighted / self.weight_sum, 1) if self.weight_sum else None
        coverage = (
            round(100 * self.covered / self.coverage_weight, 1) if self.coverage_weight else None
        )
        return Score(value=value, grade=grade(value), coverage=coverage, counts=dict(self.counts))


def score(results: Iterable[Result], section_of: Mapping[str, str]) -> ScoreCard:
    """Score `results`; `section_of` maps control ids to their section ids.

    One pass over the results counts each (check, target) pair; the pairs make the tallies
    of each target and each check; the checks' tallies add up to their controls', sections'
    and severities' and the run's (a run of 10,000 hosts has two million results and as many
    pairs, a profile a few hundred checks)."""
    pairs: dict[tuple[str, str], _Pair] = {}
    about: dict[str, tuple[str, Severity]] = {}  # check id -> its control and severity
    for result in results:
        key = (result.check_id, result.target)
        pair = pairs.get(key)
        if pair is None:
            pair = pairs[key] = _Pair(result.severity.weight)
            about.setdefault(result.check_id, (result.control_id, result.severity))
        status = str(result.status)
        pair.counts[status] = pair.counts.get(status, 0) + 1
    by_target: dict[str, _Tally] = defaultdict(_Tally)
    by_check: dict[str, _Tally] = defaultdict(_Tally)
    for (check_id, target), pair in pairs.items():
        pair.reckon()
        by_target[target].add_pair(pair)
        by_check[check_id].add_pair(pair)
    overall = _Tally()
    by_control: dict[str, _Tally] = defaultdict(_Tally)
    by_section: dict[str, _Tally] = defaultdict(_Tally)
    by_severity: dict[str, _Tally] = {str(s): _Tally() for s in Severity}
    for check_id, tally in by_check.items():
        control_id, severity = about[check_id]
        overall.add(tally)
        by_control[control_id].add(tally)
        by_section[section_of.get(control_id, "")].add(tally)
        by_severity[str(severity)].add(tally)

    def scores(tallies: Mapping[str, _Tally]) -> dict[str, Score]:
        return {name: tally.score() for name, tally in sorted(tallies.items())}

    return ScoreCard(
        overall=overall.score(),
        by_target=scores(by_target),
        by_control=scores(by_control),
        by_section=scores(by_section),
        by_check=scores(by_check),
        by_severity={name: dict(tally.counts) for name, tally in by_severity.items()},
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
