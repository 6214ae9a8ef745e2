"""Every adapter implements the ports it is used as (the protocols are runtime-checkable)."""

from __future__ import annotations

import pytest

from mcp_memory.stores.ports import CheckpointStore, DurableStore, EpisodeStore, SessionStore, WorkingStore
from tests.conftest import StorePair

pytestmark = pytest.mark.anyio


async def test_adapters_implement_their_ports(stores: StorePair) -> None:
    assert isinstance(stores.working, WorkingStore)
    for port in (SessionStore, CheckpointStore, EpisodeStore, DurableStore):
        assert isinstance(stores.durable, port)
