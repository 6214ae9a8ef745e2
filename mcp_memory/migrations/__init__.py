"""Alembic migrations of the Postgres schema, shipped inside the package and run by ``mcp-memory migrate``.

There is no ``alembic.ini``: :mod:`mcp_memory.stores.postgres.schema` builds the Alembic configuration in code and
hands ``env.py`` an open connection. The embedding dimension (the ``vector(n)`` column's n) reaches the first
migration through ``config.attributes["embedding_dimension"]`` and is recorded in ``mcp_memory_meta`` so that
start-up can refuse a server configured with another dimension.
"""
