"""A seal's owner and lease: ``sessions.seal_token`` (the terminate that sealed the session) and
``sessions.seal_until`` (when another terminate may take the seal over, if its owner never finished or unsealed).

A terminate seals with its own token and unseals only a seal it holds, so that a terminate that failed cannot unseal
a session another terminate is consolidating. A seal made before this revision has no owner: any terminate may take
it over. Two nullable columns: no rewrite of ``sessions``.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

from mcp_memory.stores.migrations.postgres_steps import added_columns

revision = "0004"
down_revision = "0003"
upgrade, downgrade = added_columns("sessions", "seal_token text", "seal_until timestamptz")
