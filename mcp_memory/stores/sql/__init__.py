"""What the two SQL stores (:mod:`~mcp_memory.stores.sqlite` and :mod:`~mcp_memory.stores.postgres`) share.

Both keep the same tables with the same column names and select a session by the same scope, so what reads and
checks them the same way lives here once:

- :mod:`.queries`: the SQL text both send alike, and the builders of its variable parts (filters, projects);
- :mod:`.rules`: the contract's checks and error messages (key limit, writability, replayed terminates...);
- :mod:`.dialect`: how values cross each driver (UUIDs, JSON, times) and the one SQL fragment that differs;
- :mod:`.store`: :class:`~mcp_memory.stores.sql.store.SqlStore`, the base of both stores, with the rows-to-models
  mapping and the port methods whose SQL and steps are the same.

Left in each adapter on purpose: the transaction models (SQLite's single writer with ``BEGIN IMMEDIATE`` and the
direct one-hand-over transactions, Postgres's row locks and one-statement writes), and the SQL that only looks
alike but is dialect-specific (upserts, CTE writes, full text, vectors, key ordering and prefix matching).
"""
