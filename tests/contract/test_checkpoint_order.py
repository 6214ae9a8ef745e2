"""Which checkpoint is the newest, for every store pair: the latest snapshot, not the latest commit."""

from __future__ import annotations

import json

import pytest

from mcp_memory.models import CheckpointInfo, Item, to_datetime
from mcp_memory.stores.ports import EventRecord
from tests.conftest import StorePair, new_scope

pytestmark = pytest.mark.anyio


async def test_newest_checkpoint_is_the_latest_snapshot_not_the_latest_commit(stores: StorePair) -> None:
    """Two processes sharing a file may commit their pauses in the other order than they snapshotted."""
    scope = new_scope()
    await stores.open_session(scope, 1000.0)
    for cid, taken in (("later-snapshot", 1002.0), ("earlier-snapshot", 1001.0)):  # committed in this order
        info = CheckpointInfo(checkpoint_id=cid, created_at=to_datetime(taken), keys_count=1, bytes=1, content_hash="h")
        await stores.durable.record_pause(
            scope, info, {"k": Item(json.dumps(cid))}, EventRecord("pause", taken, 0, "ok")
        )
    newest = await stores.durable.get_checkpoint(scope, None)
    assert newest is not None and newest.info.checkpoint_id == "later-snapshot"
    listed = await stores.durable.list_checkpoints(scope, 10, None)
    assert [c.checkpoint_id for c in listed] == ["later-snapshot", "earlier-snapshot"]
    older = await stores.durable.list_checkpoints(scope, 10, "later-snapshot")
    assert [c.checkpoint_id for c in older] == ["earlier-snapshot"]
