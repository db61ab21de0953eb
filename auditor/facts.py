"""Making facts: redacted, canonically serialised and hashed evidence, and what each fact is."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

from auditor.model import Fact, FactJson, Subject
from auditor.redact import redact


@dataclass(frozen=True)
class FactSpec:
    """A fact a collector can gather. For facts that hold subjects (`for_each`), `items` lists
    them from the fact's data (default: the data is the list) and `subject` names each one,
    so a result can say which container, file or pod it is about. An item that is a dict
    with an `_error` key is a subject that could not be read: its results are `error`."""

    name: str
    description: str
    subject: Callable[[Any], Subject] | None = None
    items: Callable[[Any], list[Any]] | None = None

    def subjects(self, data: Any) -> list[Any]:
        items = self.items(data) if self.items is not None else data
        if not isinstance(items, list):
            raise TypeError(f"{self.name} does not hold a list of subjects")
        return items


def canonical_json(data: Any) -> str:
    """The one serialisation hashes are taken over: sorted keys, no whitespace, UTF-8, as
    orjson writes it (3x the stdlib's speed; the same text but for floats with a negative
    exponent, 1e-7 for 1e-07). What orjson refuses (integers beyond 64 bits) is written by
    the stdlib. Data held as FactJson is that text already."""
    if isinstance(data, FactJson):
        return data.text
    try:
        return orjson.dumps(data, default=str, option=_CANONICAL).decode("utf-8")
    except TypeError:
        return json.dumps(
            data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
        )


_CANONICAL = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def sha256_of(data: Any) -> str:
    return hashlib.sha256(canonical_json(data).encode("utf-8")).hexdigest()


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class CleanData(NamedTuple):
    """Fact data with credentials redacted, and the sha256 of its canonical JSON: what
    `clean_data` makes, and the only data a Fact is made of."""

    data: Any
    sha256: str


def clean_data(data: Any) -> CleanData:
    clean = redact(data)
    return CleanData(clean, sha256_of(clean))


def new_fact(
    name: str,
    target: str,
    data: Any,
    *,
    source: str,
    status: int | None = None,
    stderr: str = "",
    error: str | None = None,
    collected_at: str | None = None,
) -> Fact:
    """A fact with credentials redacted before anything else can see it."""
    return fact_of(
        name,
        target,
        clean_data(data),
        source=source,
        status=status,
        stderr=stderr,
        error=error,
        collected_at=collected_at,
    )


def fact_of(
    name: str,
    target: str,
    clean: CleanData,
    *,
    source: str,
    status: int | None = None,
    stderr: str = "",
    error: str | None = None,
    collected_at: str | None = None,
) -> Fact:
    """new_fact of data already cleaned (one CleanData may serve many targets' facts)."""
    return Fact(
        name=name,
        target=target,
        data=clean.data,
        source=source,
        status=status,
        stderr=redact(stderr),
        collected_at=collected_at or utc_now(),
        sha256=clean.sha256,
        error=error,
    )


def failed_fact(name: str, target: str, reason: str, *, source: str = "") -> Fact:
    """A fact that could not be collected; every check that needs it becomes `error`."""
    return new_fact(name, target, None, source=source, error=reason)
