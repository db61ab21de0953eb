"""The image layer cache: each scanned layer's content findings, by the layer's digest, the
scanner's rule-set version and the fingerprint key, so a layer is read once per store.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "image_layers",
        sa.Column("diff_id", sa.String(80), primary_key=True),
        sa.Column("rules", sa.String(64), primary_key=True),
        sa.Column("key_id", sa.String(16), primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("used_at", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("image_layers")
