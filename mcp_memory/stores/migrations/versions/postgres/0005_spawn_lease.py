"""A two-step spawn's token and lease: ``sessions.spawn_token`` (the spawn that made the session) and
``sessions.spawn_until`` (set while that spawn is under way; NULL once it has completed).

With working memory in Redis, spawn creates the durable row, then writes the initial state to Redis, then marks the
row complete. Until then the session does not exist for any call, and once ``spawn_until`` has passed (the spawn's
server crashed or gave up) a retried spawn takes the row over: a crash mid-spawn leaves no session, or a whole one.
A session made before this revision has neither: it is complete. Two nullable columns: no rewrite of ``sessions``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from mcp_memory.stores.migrations.postgres_steps import added_columns

revision = "0005"
down_revision = "0004"
upgrade, downgrade = added_columns("sessions", "spawn_token text", "spawn_until timestamptz")
