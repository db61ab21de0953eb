"""The image layer cache: each image layer's content findings, kept by the layer's digest.

An image layer never changes (its diff_id is the sha256 of its tar), so what the content
scan finds in it holds for every image that has it, on every run, until the scanner's rules
change. The findings are kept in the evidence store's `image_layers` table (the same
database a run is stored in: SQLite by default, PostgreSQL with --db, so scheduled runs and
the workers of a fleet share them), or, for `--no-store` runs, in a store of their own in
the user's cache directory (auditor.collectors.image_layers.user_cache_url).

A row is keyed by the diff_id, the rule set (`rules`: the scanner's SCAN_RULES_VERSION and
what else changes what it finds) and the id of the fingerprint key that made its secrets'
fingerprints; a row of another rule set or key is never read. Its data is zlib-compressed
canonical JSON with the JSON's sha256 beside it: a row that does not decompress, does not
match its sha256 or is not JSON reads as absent, and the next `put` of that layer replaces it.

The collector opens the cache itself, in whichever process collects (the auditing process,
or an `auditor worker`), with its own short transactions, not through the run's store
writer: the cache is read before the target's facts exist, and a worker has no writer.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from auditor.facts import canonical_json, utc_now
from auditor.store import (
    StoreError,
    _chunks,
    _reason,
    normalise_url,
    open_engine,
    sha256_hex,
)
from auditor.store.schema import image_layers

log = logging.getLogger(__name__)


class LayerCache:
    """Findings of image layers by diff_id, for one rule set and fingerprint key. Each method
    is one short transaction; safe to share across threads."""

    def __init__(self, engine: Engine, shown_url: str, rules: str, key_id: str) -> None:
        self.engine = engine
        self.url = shown_url
        self.rules = rules
        self.key_id = key_id

    def close(self) -> None:
        self.engine.dispose()

    def get(self, diff_ids: Iterable[str]) -> dict[str, Any]:
        """The kept JSON of each layer of `diff_ids` that has a sound entry (marked used now:
        `auditor runs prune --older-than` drops the layers no audit used since)."""
        found: dict[str, Any] = {}
        try:
            with self.engine.begin() as conn:
                for chunk in _chunks(sorted(set(diff_ids))):
                    rows = conn.execute(
                        select(image_layers.c.diff_id, image_layers.c.sha256, image_layers.c.data)
                        .where(image_layers.c.diff_id.in_(chunk))
                        .where(image_layers.c.rules == self.rules)
                        .where(image_layers.c.key_id == self.key_id)
                    ).all()
                    for row in rows:
                        data = _decode(row.data, row.sha256)
                        if data is None:
                            log.debug("layer cache entry %s is corrupt: ignored", row.diff_id)
                        else:
                            found[row.diff_id] = data
                    used = [row.diff_id for row in rows if row.diff_id in found]
                    if used:
                        conn.execute(
                            update(image_layers)
                            .where(image_layers.c.diff_id.in_(used))
                            .where(image_layers.c.rules == self.rules)
                            .where(image_layers.c.key_id == self.key_id)
                            .values(used_at=utc_now())
                        )
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read the layer cache {self.url}: {_reason(exc)}") from exc
        return found

    def put(self, entries: Mapping[str, Any]) -> None:
        """Keep (or replace) the JSON of each layer in `entries` (diff_id -> JSON)."""
        if not entries:
            return
        now = utc_now()
        rows = []
        for diff_id, data in entries.items():
            text = canonical_json(data).encode()
            rows.append(
                {
                    "diff_id": diff_id,
                    "rules": self.rules,
                    "key_id": self.key_id,
                    "sha256": sha256_hex(text),
                    "data": zlib.compress(text, 6),
                    "used_at": now,
                }
            )
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(image_layers)
        statement = statement.on_conflict_do_update(
            index_elements=["diff_id", "rules", "key_id"],
            set_={
                "sha256": statement.excluded.sha256,
                "data": statement.excluded.data,
                "used_at": statement.excluded.used_at,
            },
        )
        try:
            with self.engine.begin() as conn:
                conn.execute(statement, rows)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot write the layer cache {self.url}: {_reason(exc)}") from exc


def open_layer_cache(url: str, rules: str, key_id: str) -> LayerCache:
    """Open (creating or upgrading the database as the store does) the layer cache at `url`."""
    engine, shown = open_engine(normalise_url(url), "the layer cache")
    return LayerCache(engine, shown, rules, key_id)


def _decode(data: bytes, sha256: str) -> Any:
    """The JSON of a row, or None when the row is damaged."""
    try:
        text = zlib.decompress(data)
    except (zlib.error, TypeError):
        return None
    if sha256_hex(text) != sha256:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None
