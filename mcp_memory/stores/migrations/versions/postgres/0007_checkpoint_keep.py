"""A checkpoint can be kept from retention pruning (``pause(keep=true)``): ``checkpoints.keep``.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

from mcp_memory.stores.migrations.postgres_steps import added_columns

revision = "0007"
down_revision = "0006"
# A constant default: Postgres 11+ adds the column without rewriting the table.
upgrade, downgrade = added_columns("checkpoints", "keep boolean NOT NULL DEFAULT false")
