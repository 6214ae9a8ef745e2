"""A checkpoint's state is stored out of line without compression (``STORAGE EXTERNAL``), not pglz-compressed.

A pause waits for its checkpoint's insert. pglz is slow, and it gives up on data it cannot shrink by a quarter only
after trying. A state of 1,000 values of ~100 varied characters (116 kB of JSON text) took 4.05 ms to insert with
compression tried (and then abandoned), and 1.45 ms without. A state that does compress (repeated values) took the
same time either way (1.30 ms), because compressing it is quick. The state is still TOASTed out of line, so it costs
a row nothing until read. The price is disk: a compressible state is kept at its full size (100 checkpoints of a
1,000-key session are ~12 MB). An operator who prefers the disk can set the column back to ``EXTENDED``; that only
affects rows written afterwards.

``ALTER COLUMN ... SET STORAGE`` changes the catalog only: existing rows keep what they have, and nothing is
rewritten or locked for long.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE checkpoints ALTER COLUMN state SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.execute("ALTER TABLE checkpoints ALTER COLUMN state SET STORAGE EXTENDED")
