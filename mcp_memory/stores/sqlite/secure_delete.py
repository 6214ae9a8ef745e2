"""SQLite's ``PRAGMA secure_delete``: FAST on every connection, ON for one transaction's deletions a caller asked for.

With it ON, SQLite overwrites with zeros what a deletion frees: the row's cell, its overflow pages, the pages that
go to the free list. With FAST, only what costs no extra I/O: the freed bytes inside the pages the deletion writes
anyway, not the overflow and other pages it sends to the free list. Without it (OFF, SQLite's own default; Debian's
build turns it ON), a deleted row's bytes stay in the file's free space until a later write reuses them, readable by
anyone with the file.

Every connection of the store starts at FAST (set once when it connects, see
:class:`~mcp_memory.stores.sqlite.connection.SqliteConnection`), whatever the build's default. What runs on the hot
paths runs under it with no PRAGMA of its own: a pause's retention prune
(:meth:`~mcp_memory.stores.sqlite.transitions.SqliteTransitions._prune_sync`), which leaves the pruned checkpoint's
pages to the next pause's checkpoint (it reuses them), a resume's clear, and a ``memory_set`` replacing a value (the old
bytes in the row's page are zeroed; the overflow pages of a value past about a page, not). The deletions and overwrites
a caller asks for run with ON (:func:`secure_delete`, set for them and put back after them, in their transaction, as the
setting belongs to the connection and takes effect at once): ``memory_delete``, the clear of working memory (a
terminate's), ``update_episode``, ``delete_checkpoint``, ``delete_session``, ``forget_episodes`` and the operator's
``forget``. The old page images in the WAL file are another matter: they go when a checkpoint truncates it (the
operator's ``forget`` does, see :meth:`~mcp_memory.stores.sqlite.connection.SqliteConnection.truncate_wal`).
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
