"""The evidence store's tables (the schema at the newest migration, for queries).

Everything large is a content-addressed blob: zlib-compressed canonical JSON keyed by the
sha256 of that JSON. A fact's data, a target's fact list ("manifest"), a target's results
and a profile's catalogue are each stored once however many runs refer to them, so a
second run whose evidence and verdicts did not change adds a few hundred bytes per target.
The migrations under migrations/versions/ create these tables; keep both in step.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

SHA = 64  # hex sha256

blobs = Table(
    "blobs",
    metadata,
    Column("sha256", String(SHA), primary_key=True),
    Column("kind", String(16), nullable=False),  # evidence | facts | results | catalog
    Column("size", Integer, nullable=False),  # bytes of the uncompressed JSON
    Column("data", LargeBinary, nullable=False),  # PostgreSQL: STORAGE EXTERNAL (0005)
)

# Which evidence blobs a facts manifest refers to: what prune follows to keep evidence alive.
blob_refs = Table(
    "blob_refs",
    metadata,
    Column("parent", ForeignKey("blobs.sha256", ondelete="CASCADE"), primary_key=True),
    Column("child", ForeignKey("blobs.sha256"), primary_key=True),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("started_at", String(32), nullable=False),  # ISO 8601 UTC, as in the document
    Column("finished_at", String(32)),  # set by finish_run; null after SIGKILL
    Column("complete", Boolean, nullable=False),  # false from the start, true at the end
    Column("tool_version", String(32), nullable=False),
    Column("profile_id", String(128), nullable=False),
    Column("profile_version", String(64), nullable=False),
    Column("catalog_sha", ForeignKey("blobs.sha256"), nullable=False),
    Column("target_names", JSON, nullable=False),  # planned targets, in order
    Column("target_key", String(SHA), nullable=False),  # sha256 of the sorted names
    Column("results_sha", ForeignKey("blobs.sha256")),  # results of no target (attestations)
    Column("score", Float),
    Column("coverage", Float),
    Column("grade", String(1)),
    Column("counts", JSON),
    Column("source", String(16), nullable=False, server_default="run"),  # run | evaluate
    Column("extra", JSON),  # document keys beside the results: waivers, attestations
    Column("trend", JSON),  # {"sections": {id: score}, "severities": {severity: failing}}
)
Index("ix_runs_target_key_started_at", runs.c.target_key, runs.c.started_at)
Index("ix_runs_started_at", runs.c.started_at)

run_targets = Table(
    "run_targets",
    metadata,
    Column("run_id", ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(1024), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("url", Text, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("started_at", String(32), nullable=False),
    Column("finished_at", String(32), nullable=False),
    Column("error", Text),
    Column("facts_sha", ForeignKey("blobs.sha256"), nullable=False),
    Column("collected_at", JSON, nullable=False),  # one time for all facts, or one per fact
    Column("results_sha", ForeignKey("blobs.sha256"), nullable=False),
    Column("score", Float),
    Column("coverage", Float),
    Column("counts", JSON),
)

# The image layer cache (auditor.store.layers): one row per layer digest, rule-set version
# and fingerprint key; `data` is the zlib-compressed canonical JSON whose sha256 is `sha256`.
image_layers = Table(
    "image_layers",
    metadata,
    Column("diff_id", String(80), primary_key=True),  # "sha256:<hex>" of the layer's tar
    Column("rules", String(64), primary_key=True),  # the scanner's rule-set and file bound
    Column("key_id", String(16), primary_key=True),  # which fingerprint key made the prints
    Column("sha256", String(SHA), nullable=False),
    Column("data", LargeBinary, nullable=False),  # PostgreSQL: STORAGE EXTERNAL (0005)
    Column("used_at", String(32), nullable=False),  # last kept or read: what prune goes by
)
