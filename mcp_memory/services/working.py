"""WorkingMemory: one session's key-value state, with limits and per-key TTL.

Every input is checked before anything is written: the key (non-empty, at most ``max_key_length``
characters), the value (JSON, at most ``max_value_bytes`` serialised) and the TTL (seconds, from
:data:`MIN_TTL_SECONDS` to :data:`MAX_TTL_SECONDS`). The store then enforces what needs the current state
atomically (keys per session, a terminated session's refusal of writes).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from mcp_memory.config import Settings
from mcp_memory.errors import InvalidArgument, NotFound, TooLarge
from mcp_memory.json_values import RawJSON, decode_value, encode_value, utf8_size
from mcp_memory.models import Item, Scope, to_datetime
from mcp_memory.services.validation import check_key
from mcp_memory.stores.ports import Limits, SessionStore, WorkingStore, spawn_first
from mcp_memory.summary import counted

MAX_TTL_SECONDS = 10 * 365 * 86400
MIN_TTL_SECONDS = 0.001
"""Redis keeps expiries in milliseconds: a shorter TTL would be a key dead before the answer saying it was set."""


class WorkingMemory:
    """Validated access to working memory. Stateless apart from its store and settings."""

    def __init__(
        self,
        store: WorkingStore,
        settings: Settings,
        clock: Callable[[], float] = time.time,
        sessions: SessionStore | None = None,
    ) -> None:
        self._store = store
        self._sessions = sessions
        """The authority on which sessions exist (the durable store): a working store's reads of an unknown
        session see nothing, so only it can tell an unknown session from an empty one."""
        self._settings = settings
        self._clock = clock
        self.limits = Limits(max_keys=settings.max_keys_per_session)

    @property
    def store(self) -> WorkingStore:
        """The working store this service writes to."""
        return self._store

    def now(self) -> float:
        """The service clock, in epoch seconds."""
        return self._clock()

    # -- validation ------------------------------------------------------------------------------------
    def check_key(self, key: object) -> str:
        """A valid key, or ``invalid_argument`` / ``too_large``."""
        return check_key(key, self._settings.max_key_length)

    def encode(self, value: Any, what: str = "value") -> RawJSON:
        """Serialise a value, enforcing the size limit."""
        raw = encode_value(value, what)
        size = utf8_size(raw, what)
        if size > self._settings.max_value_bytes:
            limit = counted(self._settings.max_value_bytes, "byte")
            raise TooLarge(f"{what} is {counted(size, 'byte')} serialised; the limit is {limit}")
        return raw

    def expiry(self, ttl_seconds: float | None, now: float) -> float | None:
        """Absolute expiry for a TTL (None for no TTL)."""
        if ttl_seconds is None:
            return None
        if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int | float):
            raise InvalidArgument("ttl_seconds must be a number of seconds")
        # Compared, not converted: an int past float's range (10**400) compares exactly, and NaN compares false.
        if not MIN_TTL_SECONDS <= ttl_seconds <= MAX_TTL_SECONDS:
            raise InvalidArgument(
                f"ttl_seconds must be at least {MIN_TTL_SECONDS} (a millisecond) and at most {MAX_TTL_SECONDS}"
            )
        return now + float(ttl_seconds)

    def prepare(self, state: Mapping[str, Any] | None, what: str = "initial_state") -> dict[str, Item]:
        """Validate a whole state object (``{key: value}``) into items, before anything is written."""
        if state is None:
            return {}
        if not isinstance(state, Mapping):
            raise InvalidArgument(f"{what} must be a JSON object of key -> value")
        if len(state) > self._settings.max_keys_per_session:
            raise TooLarge(
                f"{what} has {counted(len(state), 'key')}; the limit is "
                f"{counted(self._settings.max_keys_per_session, 'key')} per session"
            )
        return {self.check_key(k): Item(self.encode(v, f"value of key {k!r}")) for k, v in state.items()}

    # -- operations ------------------------------------------------------------------------------------
    async def set(self, scope: Scope, key: str, value: Any, ttl_seconds: float | None = None) -> datetime | None:
        """Store ``value`` under ``key``; returns when it expires (None: never)."""
        now = self.now()
        item = Item(self.encode(value), self.expiry(ttl_seconds, now))
        await self._store.set(scope, self.check_key(key), item, now, self.limits)
        return to_datetime(item.expires_at)

    async def get_item(self, scope: Scope, key: str) -> Item:
        """The stored item (JSON text and expiry), or ``not_found``."""
        item = await self._store.get(scope, self.check_key(key), self.now())
        if item is None:
            # Only a miss can hide an unknown session: say which is missing, the key or the session.
            if self._sessions is not None and await self._sessions.get_session(scope) is None:
                raise spawn_first(scope)
            raise NotFound(f"key {key!r} does not exist in session '{scope.session_id}' (or has expired)")
        return item

    async def get(self, scope: Scope, key: str) -> Any:
        """The decoded value, or ``not_found``."""
        return decode_value((await self.get_item(scope, key)).value)

    async def delete(self, scope: Scope, key: str) -> bool:
        """Delete a key; False if there was no live key."""
        return await self._store.delete(scope, self.check_key(key), self.now())

    async def list_keys(self, scope: Scope, prefix: str | None = None) -> list[str]:
        """Live keys, sorted, optionally only those starting with ``prefix``; ``not_found`` for a session that
        does not exist (as every other call on it), ``[]`` for one with no such key (terminated ones included)."""
        if prefix is not None and not isinstance(prefix, str):
            raise InvalidArgument("prefix must be a string")
        if prefix:
            utf8_size(prefix, "prefix")
        keys = await self._store.list_keys(scope, prefix or "", self.now())
        # Only an empty answer can hide an unknown session, so the common case costs no second look-up.
        if not keys and self._sessions is not None and await self._sessions.get_session(scope) is None:
            raise spawn_first(scope)
        return keys

    async def for_session(
        self, session_id: str, project_id: str | UUID, agent_instance_id: str | UUID
    ) -> SessionMemory:
        """The seed's entry point: working memory bound to one session (``await wm.for_session(...)``)."""
        return SessionMemory(self, Scope.parse(project_id, agent_instance_id, session_id))

    async def state(self, scope: Scope) -> dict[str, Any]:
        """All live keys with decoded values (for the session resource)."""
        items = await self._store.snapshot(scope, self.now())
        return {k: decode_value(it.value) for k, it in items.items()}


class SessionMemory:
    """Working memory of one session, with the seed's method names (``set``, ``get``, ``delete``,
    ``list_keys``). As in the seed, ``get`` returns None for a missing or expired key."""

    def __init__(self, memory: WorkingMemory, scope: Scope) -> None:
        self._memory = memory
        self.scope = scope

    async def set(self, key: str, value: Any, ttl_seconds: float | None = None) -> datetime | None:
        """Store a value; returns when it expires (None: never)."""
        return await self._memory.set(self.scope, key, value, ttl_seconds)

    async def get(self, key: str) -> Any:
        """The value, or None if the key is missing or expired."""
        try:
            return await self._memory.get(self.scope, key)
        except NotFound:
            return None

    async def delete(self, key: str) -> bool:
        """Delete a key; False if there was none."""
        return await self._memory.delete(self.scope, key)

    async def list_keys(self, prefix: str | None = None) -> list[str]:
        """Live keys, sorted."""
        return await self._memory.list_keys(self.scope, prefix)


__all__ = ["MAX_TTL_SECONDS", "MIN_TTL_SECONDS", "SessionMemory", "WorkingMemory"]
