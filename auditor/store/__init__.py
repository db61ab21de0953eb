"""The evidence store: every run, target, fact and result, in SQLite or PostgreSQL.

`open_store(url)` opens (and, for a newer auditor, migrates) the database: SQLite at
`<XDG data home>/auditor/auditor.db` by default, or `--db URL` / AUDITOR_DB, e.g.
`postgresql+psycopg://user@host/db`. A run is written as it goes: `begin_run` creates the
run row (incomplete), `save_target` commits each target as it finishes, `finish_run` marks
the run complete. A run killed at any point keeps every target saved so far and stays
marked incomplete. `load_document` rebuilds the canonical results document (auditor.document)
from the database, so any report can be made again later.

Large things are content-addressed blobs (see schema.py): evidence unchanged between runs is
stored once.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sqlite3
import time
import uuid
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    create_engine,
    delete,
    event,
    func,
    select,
    union,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from auditor import __version__, document
from auditor.errors import AuditorError
from auditor.facts import canonical_json, utc_now
from auditor.model import Fact, Result, Severity, Status, Subject, TargetRecord
from auditor.redact import data_home
from auditor.scoring import ScoreCard, score, trend_point
from auditor.store import migrate
from auditor.store.schema import blob_refs, blobs, image_layers, run_targets, runs

HISTORY_LIMIT = 30  # earlier runs load_document puts under `history`
_CHUNK = 500  # keys per IN (...) query
STATEMENT_TIMEOUT_MS = 60_000  # PostgreSQL: the longest one statement may run


class StoreError(AuditorError):
    """The evidence store cannot be opened, read or written."""

    hint = "check --db / AUDITOR_DB, or run with --no-store"


def default_url() -> str:
    """SQLite in auditor's XDG data directory."""
    return f"sqlite:///{data_home() / 'auditor.db'}"


def normalise_url(url: str) -> str:
    """A SQLAlchemy URL from what a user may type: a file path means SQLite, and a bare
    `postgresql://` means the psycopg (v3) driver of the `auditor[postgres]` extra."""
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser().resolve()}"
    scheme, rest = url.split("://", 1)
    if scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    return url


def safe_url(url: str) -> str:
    """The URL with its password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparsable database URL)"


def open_store(url: str | None = None) -> Store:
    """Open the store at `url` (default: AUDITOR_DB, then SQLite in the XDG data home)."""
    url = normalise_url(url or os.environ.get("AUDITOR_DB") or default_url())
    engine, shown = open_engine(url, "the database")
    return Store(engine, shown)


def open_engine(url: str, what: str) -> tuple[Engine, str]:
    """An engine on `url` (normalised) whose schema is current, created or upgraded as
    needed, and the URL as shown to people; StoreError naming `what` when it cannot be."""
    shown = safe_url(url)
    try:
        engine = _engine(url)
    except ImportError as exc:
        if make_url(url).get_backend_name() == "postgresql":
            raise StoreError(
                f"a PostgreSQL store ({shown}) needs the psycopg driver, an optional extra: "
                "pip install 'auditor[postgres]'"
            ) from exc
        raise StoreError(f"bad database URL {shown}: {exc}") from exc
    except ArgumentError as exc:
        raise StoreError(f"bad database URL {shown}: {exc}") from exc
    except OSError as exc:
        raise StoreError(f"cannot create {what} {shown}: {exc.strerror}") from exc
    try:
        migrate.ensure_current(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise StoreError(f"cannot open {what} {shown}: {_reason(exc)}") from exc
    except AuditorError:
        engine.dispose()
        raise
    return engine, shown


def _use_wal(connection: Any, patience: float = 30.0) -> None:
    """Switch a SQLite database to WAL. Two processes opening a new store at once (a run
    starting and `auditor runs list`) each hold a shared lock while waiting for the exclusive
    one the switch needs: a deadlock the busy handler ends only at its timeout, with "database
    is locked". So the switch does not wait: it is tried again after a short random pause,
    and once one process has switched, the others' switch is a no-op."""
    connection.execute("PRAGMA busy_timeout=0")
    deadline = time.monotonic() + patience
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(random.uniform(0.005, 0.05))


def _engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            path = Path(parsed.database)
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Evidence is redacted but still describes the estate: readable by its owner only.
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
            # auditor issues BEGIN itself (below); WAL lets readers work beside a writer,
            # and a committed target survives a killed process.
            dbapi_connection.isolation_level = None
            _use_wal(dbapi_connection)
            dbapi_connection.execute("PRAGMA synchronous=NORMAL")
            dbapi_connection.execute("PRAGMA foreign_keys=ON")
            dbapi_connection.execute("PRAGMA busy_timeout=30000")

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            # Take the write lock up front: a read transaction that later writes could
            # otherwise fail at once with "database is locked" under a concurrent writer.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql":
        # A statement the server itself cannot finish (locks, a slow disk) fails instead of
        # waiting; a server that answers nothing at all is the store writer's timeout.
        options = f"{parsed.query.get('options', '')} -c statement_timeout={STATEMENT_TIMEOUT_MS}"
        # Every statement is planned for the tables as they are: psycopg would prepare a
        # statement after 5 runs, and the server then kept the plan it made for a nearly empty
        # `blobs` (a sequential scan) while a new store filled, so storing a run went
        # quadratic until autovacuum's next ANALYZE (7, 15, 26 ms per host over three runs of
        # 200; perf/RESULTS.md). No prepared statements also suits PgBouncer's pooling.
        connect_args = {
            "connect_timeout": 10,
            "options": options.strip(),
            "prepare_threshold": None,
        }
    return create_engine(url, connect_args=connect_args, pool_pre_ping=True)


def _reason(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def target_key(names: Iterable[str]) -> str:
    """What identifies "the same targets" across runs: the sorted set of their names."""
    return sha256_hex(canonical_json(sorted(set(names))).encode())


@dataclass(frozen=True)
class RunInfo:
    """One row of `auditor runs list`."""

    id: str
    started_at: str
    finished_at: str | None
    complete: bool
    profile_id: str
    profile_version: str
    targets: list[str]
    score: float | None
    coverage: float | None
    grade: str | None
    counts: dict[str, int]
    source: str
    saved_targets: int
    untrusted: str | None  # why the evidence judged is not trusted (an unsigned bundle ...)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class Store:
    """An open evidence store. Every method is one transaction; safe to share across threads."""

    def __init__(self, engine: Engine, shown_url: str) -> None:
        self.engine = engine
        self.url = shown_url
        self._planned: tuple[str, Mapping[str, int]] | None = None  # see _planned_positions

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _transaction(self) -> _Transaction:
        return _Transaction(self)

    # --- writing a run -------------------------------------------------------------------

    def begin_run(
        self,
        catalog: Mapping[str, Any],
        target_names: Sequence[str],
        *,
        run_id: str | None = None,
        started_at: str | None = None,
        source: str = "run",
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        """Create the run, marked incomplete until finish_run; returns its id. `catalog` is
        document.catalog of the run's profile."""
        run_id = run_id or str(uuid.uuid4())
        started_at = started_at or utc_now()
        with self._transaction() as conn:
            catalog_sha = _put_blobs(conn, "catalog", [catalog])[0]
            conn.execute(
                runs.insert().values(
                    id=run_id,
                    started_at=started_at,
                    finished_at=None,
                    complete=False,
                    tool_version=__version__,
                    profile_id=catalog["profile"]["id"],
                    profile_version=catalog["profile"]["version"],
                    catalog_sha=catalog_sha,
                    target_names=list(target_names),
                    target_key=target_key(target_names),
                    source=source,
                    extra=dict(extra) if extra else None,
                )
            )
        return run_id

    def save_target(self, run_id: str, record: TargetRecord, results: Sequence[Result]) -> None:
        """Commit one finished target: its facts, their evidence, and its results."""
        facts: tuple[Fact, ...] = record.facts
        manifest = [_fact_meta(fact) for fact in facts]
        stamps = sorted({fact.collected_at for fact in facts})
        collected: list[str] = stamps if len(stamps) <= 1 else [fact.collected_at for fact in facts]
        evidence = {f.sha256: f.data for f in facts if f.error is None}
        rows = document.result_dicts(results)
        with self._transaction() as conn:
            planned = self._planned_positions(conn, run_id)
            position = planned.get(record.name, len(planned))
            _put_evidence(conn, evidence)
            (facts_sha,) = _put_blobs(conn, "facts", [manifest], children=[sorted(evidence)])
            (results_sha,) = _put_blobs(conn, "results", [rows])
            conn.execute(
                run_targets.insert().values(
                    run_id=run_id,
                    name=record.name,
                    position=position,
                    url=record.url,
                    kind=str(record.kind),
                    started_at=record.started_at,
                    finished_at=record.finished_at,
                    error=record.error,
                    facts_sha=facts_sha,
                    collected_at=collected,
                    results_sha=results_sha,
                )
            )

    def _planned_positions(self, conn: Connection, run_id: str) -> Mapping[str, int]:
        """Each planned target's place in the run, read once per run (they never change):
        reading the run's list of names for every target made storing a run quadratic in
        its size (0.6 ms per target at 10,000 targets, 2.8 ms at 50,000)."""
        cached = self._planned
        if cached is not None and cached[0] == run_id:
            return cached[1]
        row = conn.execute(select(runs.c.target_names).where(runs.c.id == run_id)).first()
        if row is None:
            raise StoreError(f"no run {run_id} in the store")
        positions: dict[str, int] = {}
        for index, name in enumerate(row[0]):
            positions.setdefault(name, index)
        # the latest run's only: a scheduler's store outlives many runs
        self._planned = (run_id, positions)
        return positions

    def save_results(self, run_id: str, results: Sequence[Result]) -> None:
        """Store the results that belong to no target (attested manual controls)."""
        with self._transaction() as conn:
            sha = _put_blobs(conn, "results", [document.result_dicts(results)])[0]
            conn.execute(update(runs).where(runs.c.id == run_id).values(results_sha=sha))

    def finish_run(
        self,
        run_id: str,
        complete: bool,
        *,
        extra: Mapping[str, Any] | None = None,
        scores: Mapping[str, Any] | None = None,
    ) -> None:
        """Close the run: its end time, whether it finished every target, and the summary
        scores shown by `runs list`. `scores` is the `score` of the run's document when the
        caller has it (auditor run does); otherwise they are computed from what is stored."""
        with self._transaction() as conn:
            row = _run_row(conn, run_id)
            if scores is None:
                catalog = _get_blobs(conn, [row.catalog_sha])[row.catalog_sha]
                results = [_result(r) for r in _run_results(conn, row)]
                scores = _asdict(score(results, _section_of(catalog)))
            overall = scores["overall"]
            values: dict[str, Any] = {
                "finished_at": utc_now(),
                "complete": complete,
                "score": overall["value"],
                "coverage": overall["coverage"],
                "grade": overall["grade"],
                "counts": overall["counts"],
                "trend": trend_point(scores),
            }
            if extra is not None:
                values["extra"] = {**(row.extra or {}), **extra}
            conn.execute(update(runs).where(runs.c.id == run_id).values(**values))
            for name, target in scores["by_target"].items():
                conn.execute(
                    update(run_targets)
                    .where(run_targets.c.run_id == run_id, run_targets.c.name == name)
                    .values(
                        score=target["value"], coverage=target["coverage"], counts=target["counts"]
                    )
                )

    # --- reading ---------------------------------------------------------------------------

    def resolve(self, ref: str) -> str:
        """A run id from what a user typed: the id, a unique prefix (4+ characters),
        `latest`, or `latest~N` (the Nth run before the latest)."""
        with self._transaction() as conn:
            if ref == "latest" or ref.startswith("latest~"):
                back = ref.partition("~")[2] or "0"
                if not back.isdigit():
                    raise StoreError(f"bad run reference {ref!r}: latest~N takes a number")
                found = conn.execute(
                    select(runs.c.id)
                    .order_by(runs.c.started_at.desc(), runs.c.id.desc())
                    .offset(int(back))
                    .limit(1)
                ).scalar()
                if found is None:
                    raise StoreError(f"no run {ref} in {self.url}")
                return str(found)
            if len(ref) < 4:
                raise StoreError(f"run reference {ref!r} is too short: give 4 characters or more")
            matches = conn.execute(
                select(runs.c.id).where(runs.c.id.startswith(ref, autoescape=True)).limit(2)
            ).scalars()
            found_ids = list(matches)
        if not found_ids:
            raise StoreError(f"no run {ref} in {self.url}", hint="`auditor runs list` shows them")
        if len(found_ids) > 1:
            raise StoreError(f"run reference {ref!r} is ambiguous: give more characters")
        return str(found_ids[0])

    def list_runs(self, limit: int | None = 50, target: str | None = None) -> list[RunInfo]:
        """The newest runs first (of one target, when given)."""
        saved = (
            select(func.count())
            .where(run_targets.c.run_id == runs.c.id)
            .correlate(runs)
            .scalar_subquery()
        )
        query = select(runs, saved.label("saved")).order_by(
            runs.c.started_at.desc(), runs.c.id.desc()
        )
        if target is not None:
            query = query.where(
                runs.c.id.in_(select(run_targets.c.run_id).where(run_targets.c.name == target))
            )
        if limit is not None:
            query = query.limit(limit)
        with self._transaction() as conn:
            rows = conn.execute(query).all()
        return [
            RunInfo(
                id=row.id,
                started_at=row.started_at,
                finished_at=row.finished_at,
                complete=bool(row.complete),
                profile_id=row.profile_id,
                profile_version=row.profile_version,
                targets=list(row.target_names),
                score=row.score,
                coverage=row.coverage,
                grade=row.grade,
                counts=dict(row.counts or {}),
                source=row.source,
                saved_targets=int(row.saved),
                untrusted=(row.extra or {}).get("untrusted"),
            )
            for row in rows
        ]

    def history(
        self, target_names: Sequence[str], limit: int = HISTORY_LIMIT, *, before: str | None = None
    ) -> list[dict[str, Any]]:
        """Earlier complete runs of exactly these targets, oldest first (at most `limit`, the
        newest ones), for trend charts; `before` is a run id: only runs started before it."""
        query = (
            select(
                runs.c.id,
                runs.c.finished_at,
                runs.c.score,
                runs.c.coverage,
                runs.c.grade,
                runs.c.trend,
            )
            .where(runs.c.target_key == target_key(target_names), runs.c.complete.is_(True))
            .order_by(runs.c.started_at.desc(), runs.c.id.desc())
            .limit(limit)
        )
        with self._transaction() as conn:
            if before is not None:
                started = _run_row(conn, before).started_at
                query = query.where(runs.c.started_at < started, runs.c.id != before)
            rows = conn.execute(query).all()
        return [
            {
                "run_id": row.id,
                "finished_at": row.finished_at,
                "score": row.score,
                "coverage": row.coverage,
                "grade": row.grade,
                **(row.trend or {"sections": {}, "severities": {}}),  # none before 0003
            }
            for row in reversed(rows)
        ]

    def previous_run(self, run_id: str) -> str | None:
        """The latest complete run of the same targets started before `run_id`."""
        earlier = self.history(self.target_names(run_id), 1, before=run_id)
        return str(earlier[-1]["run_id"]) if earlier else None

    def target_names(self, run_id: str) -> list[str]:
        with self._transaction() as conn:
            return list(_run_row(conn, run_id).target_names)

    def load_document(self, run_id: str, *, history: int = HISTORY_LIMIT) -> dict[str, Any]:
        """The canonical results document of a stored run, as `auditor run` wrote it (plus
        `history`: earlier complete runs of the same targets)."""
        with self._transaction() as conn:
            row = _run_row(conn, run_id)
            targets = conn.execute(
                select(run_targets)
                .where(run_targets.c.run_id == run_id)
                .order_by(run_targets.c.position, run_targets.c.finished_at)
            ).all()
            wanted = {row.catalog_sha} | {t.facts_sha for t in targets}
            wanted |= {t.results_sha for t in targets}
            if row.results_sha:
                wanted.add(row.results_sha)
            loaded = _get_blobs(conn, wanted)
            evidence_keys = {
                fact["sha256"]
                for t in targets
                for fact in loaded[t.facts_sha]
                if fact["error"] is None
            }
            evidence = _get_blobs(conn, evidence_keys)
        catalog = loaded[row.catalog_sha]
        result_rows: list[dict[str, Any]] = []
        for target in targets:
            result_rows.extend(loaded[target.results_sha])
        if row.results_sha:
            result_rows.extend(loaded[row.results_sha])
        card = score((_result(r) for r in result_rows), _section_of(catalog))
        finished = row.finished_at or max(
            [row.started_at, *(t.finished_at for t in targets)], default=row.started_at
        )
        doc: dict[str, Any] = {
            "schema": document.SCHEMA,
            "run": {
                "id": row.id,
                "tool": "auditor",
                "tool_version": row.tool_version,
                "started_at": row.started_at,
                "finished_at": finished,
                "complete": bool(row.complete),
                "profile": catalog["profile"],
            },
            "score": _asdict(card),
            "formula": catalog["formula"],
            "sections": catalog["sections"],
            "controls": catalog["controls"],
            "coverage_matrix": catalog.get("coverage_matrix", []),  # older stores lack it
            **document.fold_unaudited_document(
                [_target_doc(t, loaded[t.facts_sha]) for t in targets], result_rows
            ),
            "evidence": {
                fact["sha256"]: evidence[fact["sha256"]]
                for t in targets
                for fact in loaded[t.facts_sha]
                if fact["error"] is None
            },
        }
        doc.update(row.extra or {})
        if history:
            doc["history"] = self.history(list(row.target_names), history, before=run_id)
        return doc

    # --- retention -------------------------------------------------------------------------

    def prune(
        self,
        *,
        keep: int | None = None,
        older_than_days: float | None = None,
        dry_run: bool = False,
    ) -> list[str]:
        """Delete runs: all but the `keep` newest of each set of targets, and/or those
        started more than `older_than_days` ago. Blobs no run refers to any more go too, and
        with `older_than_days` the image layers (store.layers) no audit used since.
        Returns the deleted (or, with dry_run, deletable) run ids."""
        if keep is None and older_than_days is None:
            raise StoreError("prune needs --keep N or --older-than DAYS")
        with self._transaction() as conn:
            rows = conn.execute(
                select(runs.c.id, runs.c.target_key, runs.c.started_at).order_by(
                    runs.c.started_at.desc(), runs.c.id.desc()
                )
            ).all()
            doomed: list[str] = []
            seen: dict[str, int] = {}
            cutoff = None
            if older_than_days is not None:
                when = datetime.now(UTC) - timedelta(days=older_than_days)
                cutoff = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            for row in rows:
                seen[row.target_key] = seen.get(row.target_key, 0) + 1
                too_many = keep is not None and seen[row.target_key] > keep
                too_old = cutoff is not None and row.started_at < cutoff
                if too_many or too_old:
                    doomed.append(row.id)
            if dry_run:
                return doomed
            if cutoff is not None:
                conn.execute(delete(image_layers).where(image_layers.c.used_at < cutoff))
            if not doomed:
                return doomed
            for chunk in _chunks(doomed):
                conn.execute(delete(run_targets).where(run_targets.c.run_id.in_(chunk)))
                conn.execute(delete(runs).where(runs.c.id.in_(chunk)))
            _collect_garbage(conn)
        if self.engine.dialect.name == "sqlite":
            with self.engine.connect() as conn:  # give the space back to the file system
                conn.connection.driver_connection.execute("VACUUM")  # type: ignore[union-attr]
        return doomed

    def blob_count(self) -> int:
        with self._transaction() as conn:
            return int(conn.execute(select(func.count()).select_from(blobs)).scalar() or 0)


class _Transaction:
    """`with store._transaction() as conn`: one transaction, database errors as StoreError."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def __enter__(self) -> Connection:
        try:
            self.conn = self.store.engine.connect()
            self.trans = self.conn.begin()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot use the database {self.store.url}: {_reason(exc)}") from exc
        return self.conn

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None:
                self.trans.commit()
            else:
                self.trans.rollback()
        except SQLAlchemyError as error:
            if exc_type is None:
                raise StoreError(
                    f"cannot write to the database {self.store.url}: {_reason(error)}"
                ) from error
        finally:
            self.conn.close()
        if isinstance(exc, SQLAlchemyError):
            raise StoreError(f"database error in {self.store.url}: {_reason(exc)}") from exc


# --- rows and blobs ----------------------------------------------------------------------


def _run_row(conn: Connection, run_id: str) -> Any:
    row = conn.execute(select(runs).where(runs.c.id == run_id)).first()
    if row is None:
        raise StoreError(f"no run {run_id} in the store")
    return row


def _run_results(conn: Connection, row: Any) -> Iterator[dict[str, Any]]:
    keys = list(
        conn.execute(
            select(run_targets.c.results_sha)
            .where(run_targets.c.run_id == row.id)
            .order_by(run_targets.c.position)
        ).scalars()
    )
    if row.results_sha:
        keys.append(row.results_sha)
    loaded = _get_blobs(conn, set(keys))
    for key in keys:
        yield from loaded[key]


# zlib's fastest level: a host's blobs (≈ 220 KiB of JSON) compress in 1.5 ms instead of
# 3.5 ms at level 6, to 22% of their size instead of 19% (a fifth of the store writer's time
# per target, perf/RESULTS.md). Any level reads back alike.
COMPRESSION_LEVEL = 1


def _encode(value: Any) -> tuple[str, bytes, int]:
    raw = canonical_json(value).encode("utf-8")
    return sha256_hex(raw), zlib.compress(raw, COMPRESSION_LEVEL), len(raw)


def _insert_ignoring_duplicates(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> None:
    """Insert rows another writer may have inserted a moment ago (same key, same content)."""
    if not rows:
        return
    name = conn.dialect.name
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        conn.execute(sqlite_insert(table).on_conflict_do_nothing(), rows)
    elif name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        conn.execute(pg_insert(table).on_conflict_do_nothing(), rows)
    else:
        conn.execute(table.insert(), rows)


def _existing(conn: Connection, keys: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(list(keys)):
        found.update(
            conn.execute(select(blobs.c.sha256).where(blobs.c.sha256.in_(chunk))).scalars()
        )
    return found


def _put_evidence(conn: Connection, evidence: Mapping[str, Any]) -> None:
    """Store fact data under the sha256 the fact already carries (computed by new_fact over
    the same canonical JSON), skipping what the store holds."""
    missing = set(evidence) - _existing(conn, evidence)
    rows = []
    for key in sorted(missing):
        raw = canonical_json(evidence[key]).encode("utf-8")
        if sha256_hex(raw) != key:
            raise StoreError(f"evidence {key[:12]} does not match its hash")
        rows.append(
            {
                "sha256": key,
                "kind": "evidence",
                "size": len(raw),
                "data": zlib.compress(raw, COMPRESSION_LEVEL),
            }
        )
    _insert_ignoring_duplicates(conn, blobs, rows)


def _put_blobs(
    conn: Connection,
    kind: str,
    values: Sequence[Any],
    *,
    children: Sequence[Sequence[str]] = (),
) -> list[str]:
    """Store JSON values as blobs (each once); returns their keys. `children[i]` are the
    evidence keys value i refers to (kept alive by it on prune)."""
    encoded = [_encode(value) for value in values]
    keys = [key for key, _, _ in encoded]
    have = _existing(conn, keys)
    rows = [
        {"sha256": key, "kind": kind, "size": size, "data": data}
        for key, data, size in encoded
        if key not in have
    ]
    _insert_ignoring_duplicates(conn, blobs, rows)
    new = {row["sha256"] for row in rows}
    refs = [
        {"parent": key, "child": child}
        for key, kids in zip(keys, children, strict=False)
        if key in new
        for child in kids
    ]
    _insert_ignoring_duplicates(conn, blob_refs, refs)
    return keys


def _get_blobs(conn: Connection, keys: Iterable[str]) -> dict[str, Any]:
    """Blob values by key; a blob whose content does not hash to its key is refused."""
    found: dict[str, Any] = {}
    for chunk in _chunks(sorted(set(keys))):
        for key, data in conn.execute(
            select(blobs.c.sha256, blobs.c.data).where(blobs.c.sha256.in_(chunk))
        ):
            try:
                raw = zlib.decompress(data)
            except zlib.error as exc:
                raise StoreError(f"blob {key[:12]} in the store is corrupt: {exc}") from exc
            if sha256_hex(raw) != key:
                raise StoreError(f"blob {key[:12]} in the store does not match its hash")
            found[key] = json.loads(raw)
    missing = set(keys) - set(found)
    if missing:
        raise StoreError(f"the store lacks blob {sorted(missing)[0][:12]} (damaged database?)")
    return found


def _collect_garbage(conn: Connection) -> None:
    """Delete blobs no run refers to. A blob is alive when a run or a run's target names it,
    or a live facts manifest lists it; one blob may be all of these (`[]` is an empty
    manifest, an empty result list and the data of an empty fact), so kinds do not matter."""
    roots = union(
        select(runs.c.catalog_sha),
        select(runs.c.results_sha).where(runs.c.results_sha.is_not(None)),
        select(run_targets.c.facts_sha),
        select(run_targets.c.results_sha),
    )
    conn.execute(
        delete(blob_refs).where(blob_refs.c.parent.not_in(select(run_targets.c.facts_sha)))
    )
    conn.execute(
        delete(blobs).where(
            blobs.c.sha256.not_in(roots), blobs.c.sha256.not_in(select(blob_refs.c.child))
        )
    )


def _chunks(keys: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(keys), _CHUNK):
        yield keys[start : start + _CHUNK]


# --- converting between records and stored JSON ------------------------------------------

_DOC_FACT_FIELDS = [f.name for f in fields(Fact) if f.name not in ("data", "target")]
_FACT_FIELDS = [name for name in _DOC_FACT_FIELDS if name != "collected_at"]
_RESULT_FIELDS = [f.name for f in fields(Result)]


def _fact_meta(fact: Fact) -> dict[str, Any]:
    return {name: getattr(fact, name) for name in _FACT_FIELDS}


def _target_doc(row: Any, manifest: list[dict[str, Any]]) -> dict[str, Any]:
    """A target of the document, its facts' times put back beside their manifest."""
    stamps: list[str] = row.collected_at or [row.started_at]
    facts = []
    for index, meta in enumerate(manifest):
        when = stamps[index] if len(stamps) > 1 else stamps[0]
        facts.append({k: when if k == "collected_at" else meta[k] for k in _DOC_FACT_FIELDS})
    return {
        "name": row.name,
        "url": row.url,
        "kind": row.kind,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
        "error": row.error,
        "facts": facts,
    }


def _result(row: Mapping[str, Any]) -> Result:
    """A Result again, for scoring: only the fields Result has."""
    values = {name: row[name] for name in _RESULT_FIELDS if name in row}
    values["subject"] = Subject(**row["subject"])
    values["severity"] = Severity(row["severity"])
    values["status"] = Status(row["status"])
    values["evidence"] = tuple(row["evidence"])
    return Result(**values)


def _section_of(catalog: Mapping[str, Any]) -> dict[str, str]:
    return {control["id"]: control["section"] for control in catalog["controls"]}


def _asdict(card: ScoreCard) -> dict[str, Any]:
    """The document's `score`: ScoreCard's fields are the document's keys."""
    return asdict(card)
