"""Ports: what the services need from storage, as ``typing.Protocol``s (one import for them all).

There are two stores. The *working store* holds one session's live key-value state (SQLite or Postgres tables, or
Redis). The *durable store* holds sessions, lifecycle events, checkpoints and episodes (SQLite or
Postgres); its lifecycle methods each write one transaction, so a lifecycle call is never half-recorded.

Contracts every adapter keeps (checked by ``tests/contract``):
- Values travel as JSON text (:data:`~mcp_memory.json_values.RawJSON`); adapters never decode them.
- Times are epoch seconds passed in by the caller (``now``), so that TTL behaviour is testable and the same
  on every adapter. An item whose ``expires_at <= now`` does not exist for any method.
- ``snapshot``, ``restore``, ``clear`` and ``open`` are atomic and cost a fixed number of round trips,
  whatever the number of keys.

The modules: :mod:`.records` (the value types), :mod:`.working_port` (working memory), :mod:`.episode_port`
(episodes), :mod:`.durable_ports` (sessions, checkpoints and the stores they make together),
:mod:`.lapsed_spawn_port` (the sweep of spawns cut off by a crash), :mod:`.reclaim_port` (what an operator's forget
does below the rows) and :mod:`.unfinished_terminate_port` (terminates cut off after their record); this module
gathers them.
"""

from __future__ import annotations

from mcp_memory.models import Item
from mcp_memory.stores import (
    durable_ports,
    episode_port,
    lapsed_spawn_port,
    reclaim_port,
    records,
    unfinished_terminate_port,
    working_port,
)
from mcp_memory.stores.durable_ports import *  # noqa: F403
from mcp_memory.stores.episode_port import *  # noqa: F403
from mcp_memory.stores.lapsed_spawn_port import *  # noqa: F403
from mcp_memory.stores.reclaim_port import *  # noqa: F403
from mcp_memory.stores.records import *  # noqa: F403
from mcp_memory.stores.unfinished_terminate_port import *  # noqa: F403
from mcp_memory.stores.working_port import *  # noqa: F403

__all__ = [
    "Item",
    *durable_ports.__all__,
    *episode_port.__all__,
    *lapsed_spawn_port.__all__,
    *reclaim_port.__all__,
    *records.__all__,
    *unfinished_terminate_port.__all__,
    *working_port.__all__,
]
