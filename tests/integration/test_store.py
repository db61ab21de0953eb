"""The evidence store on a real SQLite file and a real PostgreSQL server (tests/servers)."""

from __future__ import annotations

import json
import threading
import uuid
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine, event, text

from auditor import document, engine
from auditor.config import TargetSpec
from auditor.facts import canonical_json, new_fact, utc_now
from auditor.model import Run
from auditor.profiles import load_profile
from auditor.store import StoreError, normalise_url, open_store, sha256_hex
from auditor.store.migrate import HEAD, SchemaError, upgrade

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def profile():
    return load_profile()


@pytest.fixture(scope="module")
def local_record(profile):
    """This machine's real facts, collected once for the module."""
    record = engine.collect(profile, TargetSpec("local://"))
    assert record.error is None
    return record


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> Iterator[str]:
    """A new, empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = f"host={server.host} port={server.port} user={server.user} dbname={server.database}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield server.url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def store_run(store, profile, records, *, complete=True):
    """Record a run the way `auditor run` does; returns (run id, live document)."""
    names = [record.name for record in records]
    run_id = store.begin_run(document.catalog(profile), names)
    results = []
    for record in records:
        target_results = engine.evaluate(profile, record, profile.variables)
        store.save_target(run_id, record, target_results)
        results += target_results
    organisation = engine.attestation_results(profile, {r.kind for r in records})
    store.save_results(run_id, organisation)
    if complete:
        store.finish_run(run_id, True)
    started = store.load_document(run_id, history=0)["run"]["started_at"]
    run = Run(run_id, "0.1.0", profile.id, profile.version, started, started,
              tuple(records), tuple(results + organisation))  # fmt: skip
    return run_id, json.loads(document.dumps(document.build(run, profile)))


def test_a_stored_run_gives_back_the_document_auditor_wrote(db_url, profile, local_record):
    with open_store(db_url) as store:
        run_id, live = store_run(store, profile, [local_record])
        stored = json.loads(document.dumps(store.load_document(run_id)))
    assert stored.pop("history") == []
    live["run"]["finished_at"] = stored["run"]["finished_at"]
    assert stored == live  # every key, result, fact and evidence blob


def test_unchanged_evidence_is_stored_once_and_history_follows(db_url, profile, local_record):
    with open_store(db_url) as store:
        first, _ = store_run(store, profile, [local_record])
        blobs = store.blob_count()
        second, _ = store_run(store, profile, [local_record])
        assert store.blob_count() == blobs  # same evidence, verdicts and catalog: no new blob
        history = store.history([local_record.name])
        assert [h["run_id"] for h in history] == [first, second]
        assert store.history([local_record.name], before=second)[0]["run_id"] == first
        assert store.load_document(second)["history"][0]["run_id"] == first
        assert store.previous_run(second) == first
        assert store.previous_run(first) is None
        assert store.history(["someone-else"]) == []


def test_targets_keep_their_planned_places_and_the_plan_is_read_once(db_url, profile, local_record):
    """A run's targets are listed in the order planned, whatever order they finish in; the
    planned names are read once per run, not once per stored target (which made storing a
    run quadratic in its size)."""
    planned = [f"host-{i:03d}" for i in range(40)]
    finishing = [replace(local_record, name=name) for name in reversed(planned)]
    reads: list[str] = []

    def count_plan_reads(_conn, _cursor, statement, *_args) -> None:
        if "target_names" in statement and statement.lstrip().upper().startswith("SELECT"):
            reads.append(statement)

    with open_store(db_url) as store:
        run_id = store.begin_run(document.catalog(profile), planned)
        event.listen(store.engine, "before_cursor_execute", count_plan_reads)
        for record in finishing:
            store.save_target(run_id, record, [])
        event.remove(store.engine, "before_cursor_execute", count_plan_reads)
        store.save_target(run_id, replace(local_record, name="unplanned"), [])
        store.finish_run(run_id, True)
        names = [t["name"] for t in store.load_document(run_id, history=0)["targets"]]
    assert names == [*planned, "unplanned"]
    assert len(reads) == 1


def test_writers_storing_the_same_hosts_at_once_share_their_evidence(db_url, profile, local_record):
    """Coordinators of two zones record into one store at the same time, their hosts' evidence
    the same: neither fails on the other's copy, both runs are stored whole (every blob read
    back is checked against its hash), and pruning one keeps the other's evidence."""
    records = [replace(local_record, name=f"host-{i:02d}") for i in range(20)]
    results = engine.evaluate(profile, local_record, profile.variables)
    start = threading.Barrier(2)

    def zone(_name: str) -> str:
        with open_store(db_url) as store:
            run_id = store.begin_run(document.catalog(profile), [r.name for r in records])
            start.wait(timeout=30)
            for record in records:
                store.save_target(run_id, record, [replace(r, target=record.name) for r in results])
            store.finish_run(run_id, True)
        return run_id

    with ThreadPoolExecutor(2) as pool:
        run_ids = list(pool.map(zone, ["dc1", "dc2"], timeout=300))

    def whole(store: Any, run_id: str) -> None:
        doc = store.load_document(run_id, history=0)
        assert [t["name"] for t in doc["targets"]] == [r.name for r in records]
        assert len(doc["results"]) == len(records) * len(results)
        assert len(doc["evidence"]) == len({f.sha256 for f in local_record.facts if not f.error})

    with open_store(db_url) as store:
        for run_id in run_ids:
            whole(store, run_id)
        (pruned,) = store.prune(keep=1)  # the older of the two: their evidence is shared
        (kept,) = set(run_ids) - {pruned}
        assert [info.id for info in store.list_runs()] == [kept]
        whole(store, kept)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_postgresql_plans_each_statement_for_the_tables_as_they_are(db_url, profile, local_record):
    """No statement is prepared on the server: a plan kept from when `blobs` was nearly empty
    (a sequential scan) made storing into a new store quadratic."""
    with open_store(db_url) as store:
        run_id = store.begin_run(document.catalog(profile), [])
        for index in range(12):  # psycopg prepares what runs 5 times
            store.save_target(run_id, replace(local_record, name=f"host-{index}"), [])
        with store.engine.connect() as conn:  # the pool's one connection, used above
            prepared = conn.execute(text("SELECT count(*) FROM pg_prepared_statements")).scalar()
    assert prepared == 0


def test_postgresql_keeps_the_compressed_columns_uncompressed(postgres_server):
    """Blob and layer data is zlib output: PostgreSQL must not try to compress it again."""
    with open_store(postgres_server.url) as store, store.engine.connect() as conn:
        storage = dict(
            conn.execute(
                text(
                    "SELECT c.relname, a.attstorage FROM pg_attribute a "
                    "JOIN pg_class c ON a.attrelid = c.oid "
                    "WHERE c.relname IN ('blobs', 'image_layers') AND a.attname = 'data'"
                )
            ).all()
        )
    assert storage == {"blobs": "e", "image_layers": "e"}  # EXTERNAL


def test_a_run_that_never_finished_is_readable_and_incomplete(db_url, profile, local_record):
    other = replace(local_record, name="second", url="local://")
    with open_store(db_url) as store:
        run_id = store.begin_run(document.catalog(profile), [local_record.name, other.name])
        store.save_target(
            run_id, local_record, engine.evaluate(profile, local_record, profile.variables)
        )
        # no finish_run: as after SIGKILL
    with open_store(db_url) as store:
        (info,) = store.list_runs()
        assert (info.id, info.complete, info.saved_targets, info.finished_at) == (
            run_id, False, 1, None,
        )  # fmt: skip
        doc = store.load_document(run_id)
        assert doc["run"]["complete"] is False
        assert [t["name"] for t in doc["targets"]] == [local_record.name]
        assert doc["score"]["overall"]["value"] is not None
        assert store.history([local_record.name, other.name]) == []  # incomplete: no trend point


def test_prune_keeps_the_newest_and_frees_their_evidence(tmp_path, profile, local_record):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(url) as store:
        ids = []
        for n in range(3):  # three runs whose host.os evidence differs
            fact = new_fact("host.extra", local_record.name, {"n": n}, source="test")
            ids.append(
                store_run(
                    store, profile, [replace(local_record, facts=(*local_record.facts, fact))]
                )[0]
            )
        before = store.blob_count()
        assert store.prune(keep=1, dry_run=True) == ids[1::-1]
        assert store.blob_count() == before
        assert sorted(store.prune(keep=1)) == sorted(ids[:2])
        assert [info.id for info in store.list_runs()] == [ids[2]]
        # the two runs' own manifests and evidence went; the shared evidence stayed
        assert store.blob_count() == before - 4
        assert store.load_document(ids[2])["run"]["id"] == ids[2]
        assert store.prune(older_than_days=0) == [ids[2]]
        assert store.blob_count() == 0


def test_run_references(tmp_path, profile, local_record):
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        first, _ = store_run(store, profile, [local_record])
        second, _ = store_run(store, profile, [local_record])
        assert store.resolve("latest") == second
        assert store.resolve("latest~1") == first
        assert store.resolve(first[:8]) == first
        with pytest.raises(StoreError, match="no run latest~5"):
            store.resolve("latest~5")
        with pytest.raises(StoreError, match="too short"):
            store.resolve("ab")
        with pytest.raises(StoreError, match="no run ffffffff"):
            store.resolve("ffffffff")


def test_an_older_database_is_migrated_by_a_newer_auditor(db_url, profile, local_record):
    """A database at the first revision, with a run in it, opened by this auditor."""
    old = create_engine(normalise_url(db_url))
    upgrade(old, "0001")
    blobs = {}
    catalog = {"profile": {"id": "p", "title": "P", "version": "1", "overlays": [],
                           "disabled_checks": []},
               "formula": "f", "sections": [], "controls": []}  # fmt: skip
    for kind, value in (("catalog", catalog), ("facts", [])):  # `[]`: no facts, no results
        raw = canonical_json(value).encode()
        blobs[kind] = sha256_hex(raw)
        with old.begin() as conn:
            conn.execute(
                text("INSERT INTO blobs (sha256, kind, size, data) VALUES (:s, :k, :n, :d)"),
                {"s": blobs[kind], "k": kind, "n": len(raw), "d": zlib.compress(raw)},
            )
    now = utc_now()
    with old.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO runs (id, started_at, finished_at, complete, tool_version, "
                "profile_id, profile_version, catalog_sha, target_names, target_key, score) "
                "VALUES ('old-run-0001', :t, :t, :c, '0.0.9', 'p', '1', :cat, :names, :key, 50.0)"
            ),
            {"t": now, "c": True, "cat": blobs["catalog"], "names": '["h1"]', "key": "k" * 64},
        )
        conn.execute(
            text(
                "INSERT INTO run_targets (run_id, name, position, url, kind, started_at, "
                "finished_at, error, facts_sha, collected_at, results_sha) VALUES "
                "('old-run-0001', 'h1', 0, 'ssh://h1', 'host', :t, :t, 'unreachable', :f, "
                "'[]', :r)"
            ),
            {"t": now, "f": blobs["facts"], "r": blobs["facts"]},
        )
    old.dispose()
    with open_store(db_url) as store:
        with store.engine.connect() as conn:
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        assert version == HEAD
        (info,) = store.list_runs()
        assert (info.id, info.source, info.score) == ("old-run-0001", "run", 50.0)
        doc = store.load_document("old-run-0001")
        assert doc["targets"][0]["error"] == "unreachable"
        new_id, _ = store_run(store, profile, [local_record])  # and it takes new runs
        assert store.resolve("latest") == new_id


def test_a_newer_database_is_refused_untouched(db_url):
    with open_store(db_url):
        pass
    engine_ = create_engine(normalise_url(db_url))
    with engine_.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine_.dispose()
    with pytest.raises(SchemaError, match="revision 9999, newer than this auditor"):
        open_store(db_url)


def test_a_damaged_blob_is_detected(tmp_path, profile, local_record):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(url) as store:
        run_id, _ = store_run(store, profile, [local_record])
        with store.engine.begin() as conn:
            conn.execute(
                text("UPDATE blobs SET data = :d WHERE kind = 'evidence'"),
                {"d": zlib.compress(b'{"tampered": true}')},
            )
        with pytest.raises(StoreError, match="does not match its hash"):
            store.load_document(run_id)


def test_unreachable_database_is_one_clear_error(closed_port):
    with pytest.raises(StoreError) as caught:
        open_store(f"postgresql://auditor:s3cret@127.0.0.1:{closed_port}/auditor")
    message = str(caught.value)
    assert message.startswith("cannot open the database postgresql+psycopg://auditor:***@")
    assert "s3cret" not in message


def test_urls_users_type_are_understood(tmp_path):
    assert normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url(str(tmp_path / "a.db")) == f"sqlite:///{tmp_path / 'a.db'}"
    with open_store(str(tmp_path / "sub" / "a.db")):
        pass
    assert (tmp_path / "sub" / "a.db").stat().st_mode & 0o777 == 0o600


def _switch_at_once(path: str, barrier: Any, outcomes: Any) -> None:
    import sqlite3

    from auditor.store import _use_wal

    connection = sqlite3.connect(path, timeout=3, isolation_level=None)
    barrier.wait()
    try:
        _use_wal(connection)
        outcomes.put(connection.execute("PRAGMA journal_mode").fetchone()[0])
    except sqlite3.OperationalError as exc:
        outcomes.put(str(exc))


def test_processes_opening_a_new_store_at_once_all_switch_it_to_wal(tmp_path):
    """A run starting while `auditor runs list` opens the same new SQLite store: both switch
    it to WAL at once, which SQLite refuses at once with "database is locked" (found in CI;
    with a plain PRAGMA, one switch in seven failed in this race)."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    outcomes = []
    for round_ in range(40):
        path = tmp_path / f"new-{round_}.db"
        path.touch()
        barrier, queue = context.Barrier(3), context.Queue()
        openers = [context.Process(target=_switch_at_once, args=(str(path), barrier, queue))
                   for _ in range(3)]  # fmt: skip
        for opener in openers:
            opener.start()
        outcomes += [queue.get(timeout=60) for _ in openers]
        for opener in openers:
            opener.join()
    assert outcomes == ["wal"] * 120
