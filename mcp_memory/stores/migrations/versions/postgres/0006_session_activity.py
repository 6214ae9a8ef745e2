"""Indexes for ``list_sessions``: a project's (or one agent's) sessions, newest activity first, paged by the
position ``(updated_at, id)``.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX sessions_project_activity ON sessions (project_id, updated_at DESC, id DESC)")
    op.execute(
        "CREATE INDEX sessions_agent_activity ON sessions (project_id, agent_instance_id, updated_at DESC, id DESC)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX sessions_agent_activity")
    op.execute("DROP INDEX sessions_project_activity")
