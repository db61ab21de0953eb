"""Judging parts of a large group of subjects in other processes.

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
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, TypeVar

log = logging.getLogger(__name__)

# Subjects x checks under which a group is judged in this process: about half a second of work.
MIN_SHARED_WORK = 10_000
PARTS_PER_PROCESS = 16  # small enough to even out, large enough to be worth sending

T = TypeVar("T")

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_size = 0


def default_workers() -> int:
    """One per usable core but the one this process runs on."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return cores - 1


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
    """The results of one part: judged by a worker, or here if no worker started it in time
    or the worker failed."""

    def __init__(self, future: Future[list[Any]] | None, fallback: Callable[[], list[Any]]):
        self._future = future
        self._fallback = fallback
        self._here: list[Any] | None = None

    def take_back(self) -> None:
        """Judge the part here now if no worker has started it."""
        if self._future is None or self._future.cancel():
            self._future = None
            self._here = self._fallback()

    def results(self) -> list[Any]:
        if self._here is not None:
            return self._here
        if self._future is not None:
            try:
                return self._future.result()
            except Exception:  # a broken or killed worker: judge the part here (an error in
                # the part itself recurs here and is raised)
                log.debug("a worker failed; judging its part here", exc_info=True)
        return self._fallback()


def submit(workers: int, function: Callable[..., list[Any]], *args: Any) -> Part:
    """Run `function(*args)` in one of `workers` worker processes (all of it picklable)."""
    fallback = lambda: function(*args)  # noqa: E731 - the same call, made here
    try:
        return Part(_executor(workers).submit(function, *args), fallback)
    except (OSError, ImportError, RuntimeError):  # no pool (no /dev/shm, no sem_open, a
        # broken or shut down pool): judge the part here
        log.debug("no worker process; judging here", exc_info=True)
        return Part(None, fallback)


def _executor(workers: int) -> ProcessPoolExecutor:
    """The process's pool, started on first use (and again with more workers if asked)."""
    global _pool, _size
    with _lock:
        if _pool is None or _size < workers:
            if _pool is not None:
                _pool.shutdown(wait=False)
            # spawn, not fork: a forked child of a threaded process can inherit held locks
            context = multiprocessing.get_context("spawn")
            _pool, _size = ProcessPoolExecutor(max_workers=workers, mp_context=context), workers
        return _pool
