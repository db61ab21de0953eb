"""Sharing a large group of subjects with worker processes: the same results in the same
order as one process, and a failing worker costs nothing but time."""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path

import pytest

from auditor import engine, workers
from auditor.config import TargetSpec
from auditor.judging import groups_of, judge_group
from auditor.profiles import load_profile

pytestmark = pytest.mark.integration

DATASET = Path(__file__).resolve().parents[1] / "data" / "k8s"


# A check that reads the fact it iterates over: the workers must get that fact whole.
OVERLAY = """\
extends: nist-800-190
controls:
  - id: "org.1"
    title: Ours
    text: Our rule.
    coverage: automated
    checks:
      - id: org.namespaces-known
        title: The namespaces are known
        severity: low
        target: kubernetes
        for_each: k8s.namespaces
        assert: "size(facts.k8s.namespaces) > 0"
        remediation: None.
"""


def _audit(workers_: int, overlays: tuple[Path, ...] = ()) -> list[tuple[object, ...]]:
    profile = load_profile(overlays=overlays)
    record = engine.collect(profile, TargetSpec(url=f"k8s-snapshot://{DATASET}"))
    assert record.error is None
    with engine.judging_for(workers_) as judging:
        results = engine.evaluate(profile, record, profile.variables, judging=judging)
    return [
        (r.check_id, r.subject, r.status, r.message, r.observed, r.evidence, r.title, r.expected)
        for r in results
    ]


def test_a_shared_group_gives_what_one_process_gives(monkeypatch, tmp_path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(OVERLAY)
    alone = _audit(0, (overlay,))
    own = [row for row in alone if row[0] == "org.namespaces-known"]
    assert "pass" in {str(row[2]) for row in own}  # errors: the dataset's expected.json
    monkeypatch.setattr(workers, "MIN_SHARED_WORK", 1)  # share every group of the dataset
    submitted = []
    real_submit = workers.WorkerPool.submit

    def counted(pool: workers.WorkerPool, part: object) -> workers.Part:
        submitted.append(part)
        return real_submit(pool, part)  # type: ignore[arg-type]

    monkeypatch.setattr(workers.WorkerPool, "submit", counted)
    assert _audit(1, (overlay,)) == alone
    assert len(submitted) > 5 and all(part.for_each for part in submitted)
    assert {row[2] for row in alone} >= {"pass", "fail"}


class _BrokenPool:
    """A pool whose worker has died: every part comes back as an exception."""

    def submit(self, function, *args):
        future: Future[object] = Future()
        future.set_exception(RuntimeError("worker killed"))
        return future

    def shutdown(self, wait: bool, cancel_futures: bool) -> None:
        self.closed = wait and cancel_futures


def test_a_failing_worker_has_its_part_judged_here_and_the_run_stops_its_pool(monkeypatch):
    alone = _audit(0)
    monkeypatch.setattr(workers, "MIN_SHARED_WORK", 1)
    pools: list[_BrokenPool] = []

    def start(count: int) -> _BrokenPool:
        pools.append(_BrokenPool())
        return pools[-1]

    monkeypatch.setattr(workers, "start_pool", start)
    assert _audit(1) == alone
    assert len(pools) == 1 and pools[0].closed  # one pool per run, stopped when it ends


@pytest.mark.parametrize(
    "items, checks, count, sizes",
    [
        (100, 10, 3, [100]),  # 1,000 subject-checks: not worth a worker
        (4000, 10, 0, [4000]),  # no workers
        (4000, 10, 1, [125] * 32),  # PARTS_PER_PROCESS for this process and the worker
        (4001, 10, 1, [126] + [125] * 31),
        (10, 5000, 1, [1] * 10),
        (1, 20000, 3, [1]),
    ],
)
def test_parts_are_consecutive_and_even(items, checks, count, sizes):
    assert workers.PARTS_PER_PROCESS == 16
    parts = workers.split(list(range(items)), checks, count)
    assert [len(p) for p in parts] == sizes
    assert [i for part in parts for i in part] == list(range(items))


def test_parts_no_worker_started_are_judged_here():
    """A part still queued when this process is done with its own is taken back."""
    profile = load_profile()
    record = engine.collect(profile, TargetSpec(url=f"k8s-snapshot://{DATASET}"))
    info = {"name": record.name, "url": record.url, "kind": str(record.kind)}
    facts = {fact.name: fact for fact in record.facts}
    checks = profile.checks_for(record.kind)
    group = next(g for g in groups_of(checks, record.name, info, facts, {}) if len(g.items) > 2)
    here = judge_group(group)
    queued: Future[list[workers.Row]] = Future()  # never picked up by a worker
    part = workers.Part(queued, group)
    part.take_back()
    assert queued.cancelled() and part.results() == here
    started: Future[list[workers.Row]] = Future()
    started.set_running_or_notify_cancel()  # a worker has it
    part = workers.Part(started, group)
    part.take_back()
    started.set_result(workers.judge_rows(group)[:1])
    assert part.results() == here[:1]
