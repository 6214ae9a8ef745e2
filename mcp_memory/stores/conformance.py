"""Each adapter satisfies its ports, checked by mypy (strict) rather than at run time.

The factory's typed returns check the adapters it builds; this module states every adapter/port pair,
optional ports included (a store that lacks :class:`~.ports.SameStoreLifecycle` or :class:`~.ports.StagedSpawn`
silently takes the slower path, so a signature drifting from its port would otherwise go unnoticed). Imports
under ``TYPE_CHECKING`` only: importing this module loads no driver.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mcp_memory.stores.ports import (
        CombinedStore,
        DurableStore,
        LapsedSpawns,
        SameStoreLifecycle,
        StagedSpawn,
        WorkingStore,
    )
    from mcp_memory.stores.postgres.store import PostgresStore
    from mcp_memory.stores.redis.store import RedisWorkingStore
    from mcp_memory.stores.sqlite.store import SqliteStore

    _sqlite: type[CombinedStore] = SqliteStore
    _sqlite_durable: type[DurableStore] = SqliteStore
    _sqlite_one_transaction: type[SameStoreLifecycle] = SqliteStore
    _sqlite_lapsed_spawns: type[LapsedSpawns] = SqliteStore
    _postgres: type[CombinedStore] = PostgresStore
    _postgres_durable: type[DurableStore] = PostgresStore
    _postgres_one_transaction: type[SameStoreLifecycle] = PostgresStore
    _postgres_lapsed_spawns: type[LapsedSpawns] = PostgresStore
    _redis: type[WorkingStore] = RedisWorkingStore
    _redis_staged: type[StagedSpawn] = RedisWorkingStore
