"""A Redis snapshot's flat reply packs into exactly what the items would encode to: the same text as
``encode_state`` (keys sorted, each ``[value's JSON text, expires_at or null]``), the same content hash and size as
``content_hash``, and the key count; expiries go to their own keys only, whatever order Redis answered in."""

from __future__ import annotations

import random

import pytest

from mcp_memory.models import Item, content_hash
from mcp_memory.stores.redis.copies import packed_snapshot
from mcp_memory.stores.sqlite.schema import encode_state


def items_of(count: int, with_ttl: int) -> dict[str, Item]:
    rng = random.Random(count)
    keys = [f"k-{rng.randrange(10**9)}-é{i}" for i in range(count)]
    rng.shuffle(keys)  # Redis answers in its hash order, not sorted
    return {
        key: Item(f'{{"v": "{key}\\n\\"x\\"", "i": {i}}}', 1.9e9 + i * 0.25 if i < with_ttl else None)
        for i, key in enumerate(keys)
    }


@pytest.mark.parametrize(("count", "with_ttl"), [(0, 0), (1, 0), (1, 1), (300, 0), (300, 120), (300, 300)])
def test_a_snapshot_reply_packs_as_its_items_encode(count: int, with_ttl: int) -> None:
    items = items_of(count, with_ttl)
    flat = [part for key, item in items.items() for part in (key, item.value)]
    scored = [
        part for key, item in items.items() if item.expires_at is not None for part in (key, repr(item.expires_at))
    ]

    packed = packed_snapshot(["ok", flat, scored, 0, 0])

    digest, size = content_hash(items)
    assert (packed.text, packed.content_hash, packed.bytes, packed.keys_count) == (
        encode_state(items),
        digest,
        size,
        count,
    )
