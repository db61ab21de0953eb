"""PostgreSQL keeps the compressed columns as they are: blob and layer data is zlib output
already, which PostgreSQL's TOAST would otherwise try, and fail, to compress again on every
insert (3.3 of its 6.1 ms of CPU per stored host, perf/RESULTS.md). SQLite has no such step.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COMPRESSED = (("blobs", "data"), ("image_layers", "data"))


def upgrade() -> None:
    _storage("EXTERNAL")  # out of line when large, never compressed


def downgrade() -> None:
    _storage("EXTENDED")  # PostgreSQL's default for bytea


def _storage(kind: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in COMPRESSED:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET STORAGE {kind}")
