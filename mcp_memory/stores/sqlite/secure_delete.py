"""SQLite's ``PRAGMA secure_delete`` for one transaction's deletions, whatever the connection's setting.

With it ON, SQLite overwrites with zeros what a deletion frees: the row's cell, its overflow pages, the pages that
go to the free list. Without it (SQLite's own default; Debian's build turns it on), a deleted row's bytes stay in
the file's free space until a later write reuses it, readable by anyone with the file. The setting belongs to the
connection and takes effect at once, so it is set for the deletions and put back after them, in the transaction.

Deletions a caller asks for (``delete_session``, ``forget_episodes``, ``delete_checkpoint`` and the operator's
``forget``) run with ON; a pause's retention prune with FAST (see
:meth:`~mcp_memory.stores.sqlite.transitions.SqliteTransitions._prune_sync`). The old page images in the WAL file are
another matter: they go when a checkpoint truncates it (the operator's ``forget`` does, see
:meth:`~mcp_memory.stores.sqlite.connection.SqliteConnection.truncate_wal`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

SETTINGS = {0: "OFF", 1: "ON", 2: "FAST"}
"""``PRAGMA secure_delete``'s reading -> the word that sets it again (a number sets only off or on)."""
OVERWRITE = "ON"
"""What a deletion a caller asked for runs with: every freed byte overwritten (FAST leaves what would cost I/O)."""


def set_secure_delete(db: sqlite3.Connection, mode: str) -> str:
    """Set ``secure_delete`` to ``mode`` on ``db``; the word that puts the previous setting back."""
    (setting,) = db.execute("PRAGMA secure_delete").fetchone()
    db.execute(f"PRAGMA secure_delete = {mode}")
    return SETTINGS[int(setting)]


@contextmanager
def secure_delete(db: sqlite3.Connection, mode: str = OVERWRITE) -> Iterator[None]:
    """``secure_delete`` at ``mode`` on ``db`` for the block, then as it was."""
    previous = set_secure_delete(db, mode)
    try:
        yield
    finally:
        db.execute(f"PRAGMA secure_delete = {previous}")


__all__ = ["OVERWRITE", "SETTINGS", "secure_delete", "set_secure_delete"]
