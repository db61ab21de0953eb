"""Alembic environment: migrate over the connection auditor.store.migrate hands in.

auditor never reads an alembic.ini: the store opens the database, starts a transaction
(holding a lock so two auditors cannot migrate at once) and passes the connection here.
"""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
