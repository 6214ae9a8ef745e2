"""Alembic environment: runs on the connection that :mod:`mcp_memory.stores.postgres.schema` passes in."""

from __future__ import annotations

from alembic import context

from mcp_memory.stores.postgres.schema import SCHEMA, VERSION_TABLE

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reached by running the alembic CLI by hand
    raise RuntimeError("run the migrations with `mcp-memory migrate`, which passes a connection in")

# Our schema first: the version table and every migration's tables go there (connections set the search_path).
connection.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
context.configure(
    connection=connection,
    target_metadata=None,
    version_table=VERSION_TABLE,
    version_table_schema=SCHEMA,
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()
