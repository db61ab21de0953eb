"""Judging parts of a large group of subjects in other processes: the `WorkerPool` strategy.

Converting each subject into CEL values holds the GIL, so threads cannot share that work,
but a process on another core can. Only a large group is shared (a worker takes most of a
second of CPU to start). It is cut into small parts, all queued for the workers; this
process judges the first part, then its own other work, then takes back from the end of
the queue every part no worker has started (`Part.take_back`), so neither side waits on
the other for long whatever the machine. Parts come back in the order one process would
give them, and a part whose worker fails is judged here instead: nothing is lost. By
default there is one worker per usable core but one (`auditor run --workers N`; 0: none).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import replace
from typing import Any, TypeVar

from auditor import cyclegc
from auditor.judging import Group, judge_group, result
from auditor.model import Result, Status, Subject

log = logging.getLogger(__name__)

# Subjects x checks under which a group is judged in this process: about half a second of work.
MIN_SHARED_WORK = 10_000
PARTS_PER_PROCESS = 16  # small enough to even out, large enough to be worth sending

T = TypeVar("T")

# A result as a worker sends it back: the check's index in its group, the subject, status,
# message, observed values and evidence; the rest comes from the check. A Result object
# costs four times as much to send.
Row = tuple[int, Subject, str, str, dict[str, Any], tuple[str, ...]]


def default_workers() -> int:
    """One per usable core but the one this process runs on."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return cores - 1


class WorkerPool:
    """Groups judged here, each large one shared with `workers` worker processes, started
    when the first large group comes (most runs have none) and stopped by `close`."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._executor: ProcessPoolExecutor | None = None

    def judge(self, groups: Sequence[Group]) -> list[Result]:
        parts: list[list[Result] | Part] = []
        submitted: list[Part] = []
        for group in groups:
            here, *elsewhere = split(group.items, len(group.checks), self.workers)
            shipped = group.for_workers() if elsewhere else group
            queued = [self.submit(replace(shipped, items=part)) for part in elsewhere]
            parts.append(judge_group(replace(group, items=here)))  # while workers work
            parts.extend(queued)
            submitted.extend(queued)
        for waiting in reversed(submitted):  # what no worker has started yet is judged here
            waiting.take_back()
        return [r for part in parts for r in (part if isinstance(part, list) else part.results())]

    def submit(self, group: Group) -> Part:
        """Judge `group` in a worker process (here when no pool can be had)."""
        try:
            if self._executor is None:
                self._executor = start_pool(self.workers)
            return Part(self._executor.submit(judge_rows, group), group)
        except (OSError, ImportError, RuntimeError):  # no pool (no /dev/shm, no sem_open, a
            # broken or shut down pool): judge the part here
            log.debug("no worker process; judging here", exc_info=True)
            return Part(None, group)

    def close(self) -> None:
        """Stop the worker processes (every part has come back by the end of a run)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None


def judge_rows(group: Group) -> list[Row]:
    """Judge a part of a group: what a worker process is given to do (everything it needs is
    in the group), its results as rows."""
    index = {check.id: n for n, check in enumerate(group.checks)}
    results = judge_group(group)
    return [
        (index[r.check_id], r.subject, r.status.value, r.message, r.observed, r.evidence)
        for r in results
    ]


def _from_rows(group: Group, rows: list[Row]) -> list[Result]:
    return [
        result(group.checks[n], group.target, subject, Status(status), message, observed=seen,
               evidence=proof)
        for n, subject, status, message, seen, proof in rows
    ]  # fmt: skip


def split(items: Sequence[T], checks: int, workers: int) -> list[Sequence[T]]:
    """`items` in consecutive parts, PARTS_PER_PROCESS for this process and each worker;
    one part when the group is too small to be worth sharing or there are no workers."""
    if len(items) * checks < MIN_SHARED_WORK or workers <= 0 or len(items) < 2:
        return [items]
    parts = min(PARTS_PER_PROCESS * (workers + 1), len(items))
    size, extra = divmod(len(items), parts)
    bounds = [0]
    for index in range(parts):
        bounds.append(bounds[-1] + size + (index < extra))
    return [items[start:end] for start, end in zip(bounds, bounds[1:], strict=False)]


class Part:
    """The results of one part of a group: judged by a worker, or here if no worker started
    it in time or the worker failed."""

    def __init__(self, future: Future[list[Row]] | None, group: Group):
        self._future = future
        self._group = group
        self._here: list[Result] | None = None

    def take_back(self) -> None:
        """Judge the part here now if no worker has started it."""
        if self._future is None or self._future.cancel():
            self._future = None
            self._here = judge_group(self._group)

    def results(self) -> list[Result]:
        if self._here is not None:
            return self._here
        if self._future is not None:
            try:
                return _from_rows(self._group, self._future.result())
            except Exception:  # a broken or killed worker: judge the part here (an error in
                # the part itself recurs here and is raised)
                log.debug("a worker failed; judging its part here", exc_info=True)
        return judge_group(self._group)


def start_pool(workers: int) -> ProcessPoolExecutor:
    """`workers` processes, started with spawn, not fork: a forked child of a threaded
    process can inherit held locks."""
    context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=cyclegc.worker_policy
    )
