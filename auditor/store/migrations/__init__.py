"""Alembic migrations of the evidence store, shipped in the package (run by auditor.store)."""
