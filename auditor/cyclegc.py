"""The run's one policy for Python's cycle collector, applied once at the top of a run.

A run makes millions of small objects with no reference cycles among them (parsed host
output, snapshot manifests, CEL values, results); reference counting frees them. Automatic
collections triggered meanwhile would traverse them, and everything the run holds, again and
again: a tenth to a quarter of a large run's time. So during a run the collector does not run
by itself. Start-up's objects (modules, the compiled profile) are frozen out of its sight;
after each target the young generations are collected (what that target made and kept), and
every `FULL_EVERY` targets everything, so that cycle garbage (exceptions with their frames,
say) stays bounded however long the run. What survives a full collection is frozen out of
sight too: a run keeps every finished target, and full collections that traversed all of it
again would cost the square of the run's size (a quarter of a 500-target distributed run's
coordinator, more and more beyond; perf/celery_perf.py). A run whose targets arrive as
workers' JSON answers makes no cycles per target (decoded JSON has none): it collects
nothing, as a collection would only walk each answer once more (a fifth of a coordinator's
time for the young collections, a tenth for the full ones).
After the last target nothing is collected: the run is over, and the one young collection
of a one-target run walked everything it made (0.2 s of a 0.9 s Docker audit). After the
run, all is as before; while its document and reports are made (`held_out_of_sight`),
the collector runs as usual but does not see what the run holds: the first full
collection those trigger would otherwise walk every result of the run (1.4 s at 2,000
answered hosts, a fifth of the coordinator's time).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

FULL_EVERY = 64  # targets between full collections


class RunCollector:
    """Collects cycles at target boundaries; `target_done` is called once per target."""

    def __init__(self, targets: int | None = None, *, makes_cycles: bool = True) -> None:
        self._done = 0
        self._targets = targets  # how many the run has, when it is known
        self._makes_cycles = makes_cycles
        self._lock = threading.Lock()

    def target_done(self) -> None:
        with self._lock:
            self._done += 1
            last = self._done == self._targets
            full = self._done % FULL_EVERY == 0
        if last or not self._makes_cycles:
            return
        if full:
            gc.collect()
            gc.freeze()  # what is still alive now is mostly the run's results: kept to its end
        else:
            gc.collect(1)


@contextmanager
def run_policy(targets: int | None = None, *, makes_cycles: bool = True) -> Iterator[RunCollector]:
    """The collector's policy for one run of `targets` targets (see the module's docstring);
    `makes_cycles`: whether judging a target can leave cycle garbage (not so for decoded
    answers)."""
    enabled = gc.isenabled()
    gc.freeze()
    gc.disable()
    try:
        yield RunCollector(targets, makes_cycles=makes_cycles)
    finally:
        # Everything goes back to the oldest generation, and what the run made since its last
        # collection with it: re-enabled, the collector would walk all of that at once.
        gc.freeze()
        gc.unfreeze()
        if enabled:
            gc.enable()


def worker_policy() -> None:
    """The policy of a process that judges parts of large groups for a run (workers.py): it
    makes only acyclic objects and lives as long as the run, so it never collects."""
    gc.disable()


@contextmanager
def held_out_of_sight() -> Iterator[None]:
    """Everything alive now is out of the collector's sight until the block ends; what the
    block makes is collected as usual (the reports' own cycles)."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
