"""Keeping Python's cycle collector off objects it would traverse in vain.

Reading a snapshot or judging thousands of subjects makes millions of small objects with no
reference cycles among them. Collections triggered meanwhile would traverse all of them,
and the facts already held, again and again: a tenth to a quarter of those steps' time.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused() -> Iterator[None]:
    """No cycle collection inside; the collector is back on after if it was on before. Under
    threads the first to leave turns it back on: that costs time, never memory for good."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextmanager
def settled() -> Iterator[None]:
    """Everything alive on entry (modules, the compiled profile: some 50,000 objects that
    outlive the step anyway) is out of the collector's sight inside, so that collections
    traverse only what the step makes: half the collector's time in a 50-host audit. On
    exit the collector sees them again, and any cycle among them can still be collected."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
