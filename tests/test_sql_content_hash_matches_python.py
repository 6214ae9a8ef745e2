"""A checkpoint's size and content hash are the same whether the SQL store computes them in its one-transaction pause
(Postgres does it in SQL: ``sha256`` over ``key NUL value NUL`` in code point order) or Python does
(:func:`mcp_memory.models.content_hash`, the two-step path with Redis), over keys and values chosen where the two
could part: collation order against code point order, combining characters, astral characters, NUL-free control
characters, quotes, backslashes and line separators in values, many keys, and no key at all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mcp_memory.json_values import encode_value
from mcp_memory.models import CheckpointInfo, Item, content_hash, to_datetime
from mcp_memory.stores.ports import EventRecord, Limits, SameStoreLifecycle
from tests.conftest import SQL_ADAPTERS, make_store, new_scope

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000.0
LIMITS = Limits(max_keys=2_000)

CASES: dict[str, dict[str, Any]] = {
    "empty": {},
    # Sorted by a locale these interleave ("a" < "B" < "é" < "Z"); by code point: "B" < "Z" < "a" < "é".
    "collation_against_code_points": {"a": 1, "B": 2, "Z": 3, "é": 4, "e\u0301": 5, "ä": 6, "_": 7},
    "astral_and_cjk": {"😀": "grin", "日本": "値", "𝔘": "\U0001d518", "한국어": [1, 2, 3]},
    "controls_and_separators": {"a\tb": True, "line\nbreak": None, "dot.key": {}, " lead": " trail "},
    "escapes_in_values": {"q": 'say "hi"', "bs": "C:\\path\\x", "u": "café\u2028", "n": -0.0005, "big": 10**30},
    "prefixes": {"k": 1, "k1": 2, "k10": 3, "k2": 4, "k\u00a0": 5},
    "many": {f"key-{i:04d}-{chr(0x3B1 + i % 24)}": {"i": i, "s": "x" * (i % 37)} for i in range(1_000)},
}


@pytest.fixture(params=sorted(SQL_ADAPTERS))
async def same(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SameStoreLifecycle]:
    store = await make_store(request.param, tmp_path)
    try:
        assert isinstance(store, SameStoreLifecycle)
        yield store
    finally:
        await store.close()


def _event(event_type: str) -> EventRecord:
    return EventRecord(event_type, T0, 1.0, "ok", {})


@pytest.mark.parametrize("case", sorted(CASES))
async def test_the_store_hashes_a_checkpoint_as_python_does(same: SameStoreLifecycle, case: str) -> None:
    scope = new_scope()
    # Encoded as working memory encodes what a caller sets.
    items = {key: Item(encode_value(value)) for key, value in CASES[case].items()}
    await same.spawn_session(scope, None, {}, T0, _event("spawn"), items, LIMITS)
    draft = CheckpointInfo(
        checkpoint_id="cp",
        created_at=to_datetime(T0),
        keys_count=0,
        bytes=0,
        label=None,
        content_hash="",
        metadata={},
    )
    saved = await same.pause_session(scope, draft, T0, _event("pause"))
    digest, size = content_hash(items)
    assert (saved.keys_count, saved.bytes, saved.content_hash) == (len(items), size, digest)
