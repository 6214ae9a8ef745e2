"""Alembic environment of both SQL backends: runs on the connection (and in the transaction) the caller passes in
``config.attributes`` (see :mod:`mcp_memory.stores.migrations`)."""

from __future__ import annotations

from alembic import context

from mcp_memory.stores.migrations import VERSION_TABLE

attributes = context.config.attributes
connection = attributes.get("connection")
if connection is None:  # pragma: no cover - only reached by running the alembic CLI by hand
    raise RuntimeError(
        "these migrations run through mcp-memory (`mcp-memory migrate` for Postgres, start-up for SQLite), "
        "which passes a connection in"
    )

schema: str | None = attributes.get("version_table_schema")
if schema is not None:
    # Postgres: our schema first; the version table and every migration's tables go there (connections set the
    # search_path).
    connection.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
context.configure(
    connection=connection,
    target_metadata=None,
    version_table=VERSION_TABLE,
    version_table_schema=schema,
    # Postgres' DDL is transactional; on SQLite the caller's one transaction holds every revision (SQLite's DDL is
    # transactional too), and batch mode rebuilds a table where ALTER TABLE cannot change it.
    transactional_ddl=True,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
