"""The first evidence store: runs, their targets, and content-addressed blobs.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blobs",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "blob_refs",
        sa.Column(
            "parent",
            sa.String(64),
            sa.ForeignKey("blobs.sha256", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("child", sa.String(64), sa.ForeignKey("blobs.sha256"), primary_key=True),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("started_at", sa.String(32), nullable=False),
        sa.Column("finished_at", sa.String(32)),
        sa.Column("complete", sa.Boolean, nullable=False),
        sa.Column("tool_version", sa.String(32), nullable=False),
        sa.Column("profile_id", sa.String(128), nullable=False),
        sa.Column("profile_version", sa.String(64), nullable=False),
        sa.Column("catalog_sha", sa.String(64), sa.ForeignKey("blobs.sha256"), nullable=False),
        sa.Column("target_names", sa.JSON, nullable=False),
        sa.Column("target_key", sa.String(64), nullable=False),
        sa.Column("results_sha", sa.String(64), sa.ForeignKey("blobs.sha256")),
        sa.Column("score", sa.Float),
        sa.Column("coverage", sa.Float),
        sa.Column("grade", sa.String(1)),
        sa.Column("counts", sa.JSON),
    )
    op.create_index("ix_runs_target_key_started_at", "runs", ["target_key", "started_at"])
    op.create_index("ix_runs_started_at", "runs", ["started_at"])
    op.create_table(
        "run_targets",
        sa.Column(
            "run_id",
            sa.String(36),
            sa.ForeignKey("runs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("name", sa.String(1024), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("started_at", sa.String(32), nullable=False),
        sa.Column("finished_at", sa.String(32), nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("facts_sha", sa.String(64), sa.ForeignKey("blobs.sha256"), nullable=False),
        sa.Column("collected_at", sa.JSON, nullable=False),
        sa.Column("results_sha", sa.String(64), sa.ForeignKey("blobs.sha256"), nullable=False),
        sa.Column("score", sa.Float),
        sa.Column("coverage", sa.Float),
        sa.Column("counts", sa.JSON),
    )


def downgrade() -> None:
    op.drop_table("run_targets")
    op.drop_table("runs")
    op.drop_table("blob_refs")
    op.drop_table("blobs")
