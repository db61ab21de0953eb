"""The evaluation budget: no check can hang a run.

The CEL core holds the GIL and offers no way to stop an evaluation, so the budget is
enforced where Python regains control: at each helper function a check calls (they refuse
to start past the deadline) and when an evaluation returns (one that took longer is an
error of that check and subject).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import wraps
from typing import Any

EVALUATION_BUDGET = 10.0  # seconds one expression may take on one subject
_deadline = threading.local()  # .at: time.monotonic() by which this thread's must end


class BudgetExceeded(RuntimeError):
    """An expression ran past EVALUATION_BUDGET."""


def within_budget(function: Callable[..., Any]) -> Callable[..., Any]:
    """`function`, refusing to start once the expression calling it is past its deadline."""

    @wraps(function)
    def checked(*args: Any) -> Any:
        deadline = getattr(_deadline, "at", None)
        if deadline is not None and time.monotonic() > deadline:
            raise BudgetExceeded(f"stopped after the {EVALUATION_BUDGET:g}s evaluation budget")
        return function(*args)

    return checked


def execute(program: Any, context: Any) -> Any:
    """`program` run in `context` within EVALUATION_BUDGET: BudgetExceeded past it."""
    started = time.monotonic()
    _deadline.at = started + EVALUATION_BUDGET
    try:
        value = program.execute(context)
    finally:
        _deadline.at = None
    elapsed = time.monotonic() - started
    if elapsed > EVALUATION_BUDGET:
        raise BudgetExceeded(
            f"took {elapsed:.1f}s, over the {EVALUATION_BUDGET:g}s evaluation budget"
        )
    return value


def unwrap(text: str) -> str | None:
    """The budget's own words when a helper's BudgetExceeded reached us wrapped by the CEL
    core's error text, else None."""
    marker = f"{BudgetExceeded.__name__}: "
    if marker not in text:
        return None
    return text.split(marker, 1)[1].split(". Check")[0]
