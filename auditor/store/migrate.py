"""Bring a database to the newest schema with the migrations shipped in the package.

A newer auditor opening an older database upgrades it in place (inside one transaction,
holding a lock: SQLite's write lock, a PostgreSQL advisory lock), so two auditors starting
at once do not both migrate. A database newer than this auditor is refused, not touched.
Alembic is imported only when a migration is due: opening a current database costs one query.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, Engine, inspect, text

from auditor.errors import AuditorError

# Every revision this auditor knows, oldest first; tests check it against the scripts.
REVISIONS = ("0001", "0002", "0003", "0004", "0005")
HEAD = REVISIONS[-1]
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_PG_LOCK_KEY = 0x61756469746F72  # "auditor": one advisory lock for schema changes


class SchemaError(AuditorError):
    """The database's schema is one this auditor cannot use."""


def current_revision(conn: Connection) -> str | None:
    """The schema revision recorded in the database; None for a database never migrated."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def ensure_current(engine: Engine) -> None:
    """Upgrade the database to HEAD unless it is there already."""
    with engine.connect() as conn:
        revision = current_revision(conn)
    if revision == HEAD:
        return
    if revision is not None and revision not in REVISIONS:
        raise SchemaError(
            f"the database has schema revision {revision}, newer than this auditor knows "
            f"(up to {HEAD})",
            hint="upgrade auditor, or point --db at another database",
        )
    upgrade(engine, HEAD)


def upgrade(engine: Engine, revision: str) -> None:
    """Run the migrations up to `revision` in one locked transaction."""
    from alembic import command
    from alembic.config import Config

    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        if sqlite:  # a table rebuild must not cascade deletes; only settable outside BEGIN
            conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        try:
            with conn.begin():
                if engine.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
                config = Config()
                config.set_main_option("script_location", str(MIGRATIONS))
                config.attributes["connection"] = conn
                command.upgrade(config, revision)
        finally:
            if sqlite:
                conn.connection.driver_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]
