"""How values cross one SQL driver: the only differences between the two SQL stores' shared code.

SQLite stores UUIDs and JSON as TEXT and times as epoch seconds (REAL), while asyncpg hands back UUIDs, decoded
JSONB and ``timestamptz`` datetimes. A :class:`Dialect` names those conversions, and the one piece of shared SQL
that differs (the row-value comparison of the checkpoint paging bound). It holds no rule and runs no query.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from mcp_memory.models import Scope


def as_is(value: Any) -> Any:
    """The value the driver gave (for a conversion the driver already made)."""
    return value


def as_uuid(value: Any) -> UUID:
    """A UUID from a TEXT column (SQLite) or from the driver's own UUID type (asyncpg)."""
    return value if type(value) is UUID else UUID(str(value))


@dataclass(frozen=True)
class Dialect:
    """How values cross one SQL driver, and the SQL fragment that differs where the logic does not."""

    read_json: Callable[[Any], Any]
    """A JSON column's value as Python (SQLite: TEXT to decode; Postgres: JSONB, decoded by the driver)."""
    read_time: Callable[[Any], Any]
    """A time column's value as a datetime, None as None (SQLite: epoch seconds; Postgres: a ``timestamptz``
    already)."""
    read_epoch: Callable[[Any], float]
    """A time column's value as epoch seconds (SQLite: stored so; Postgres: from a ``timestamptz``)."""
    write_uuid: Callable[[UUID], Any]
    """A UUID as a query parameter."""
    write_time: Callable[[float], Any]
    """Epoch seconds as a query parameter."""
    before_bound: str
    """The paging bound of ``list_checkpoints``: rows strictly older than ``(:b_at, :b_id)``."""
    prefix_match: str
    """A condition: the text of the column ``{column}`` (``str.format``) starts with ``:prefix``, exactly (no LIKE
    wildcards, no case folding), the database counting the prefix's characters itself (Python's count need not
    be the database's)."""
    lock_rows: str = ""
    """What ends a ``SELECT`` that locks the rows it reads until the transaction ends (Postgres: ``FOR UPDATE``;
    SQLite: nothing, its write transaction already excludes every other writer)."""

    def scope_params(self, scope: Scope) -> dict[str, Any]:
        """The parameters of :data:`~mcp_memory.stores.sql.queries.SCOPE`."""
        return {
            "p": self.write_uuid(scope.project_id),
            "a": self.write_uuid(scope.agent_instance_id),
            "s": scope.session_id,
        }

    def lease_params(self, scope: Scope, token: str, now: float, lease_seconds: float) -> dict[str, Any]:
        """The session's scope with a lease taken at ``now`` by ``token`` (``t``, ``now``, ``until``): what a seal and a
        claim of an unfinished terminate write."""
        return {
            **self.scope_params(scope),
            "t": token,
            "now": self.write_time(now),
            "until": self.write_time(now + lease_seconds),
        }
