"""What a pair of stores offers beyond their ports, for :class:`~mcp_memory.services.two_step_strategy.TwoStep`."""

from __future__ import annotations

from dataclasses import dataclass

from mcp_memory.stores.ports import PackedCheckpoints, PackedWorking, PauseCopies


@dataclass(frozen=True, slots=True)
class StoreCapabilities:
    """What the two stores offer beyond their ports, looked up once per pair of store objects: ``isinstance`` against
    a runtime-checkable Protocol checks every member each time (4-10 µs a check, several per resume)."""

    working: object
    durable: object
    copies: PauseCopies | None
    """The working store, if it keeps a pause's copy (Redis)."""
    packed: PackedWorking | None
    """The working store, if it moves checkpoints as packed text (Redis)."""
    packed_reads: PackedCheckpoints | None
    """The durable store, if it reads a checkpoint as packed text and the working store takes that text."""

    @classmethod
    def of(cls, working: object, durable: object) -> StoreCapabilities:
        packed = working if isinstance(working, PackedWorking) else None
        return cls(
            working,
            durable,
            working if isinstance(working, PauseCopies) else None,
            packed,
            durable if packed is not None and isinstance(durable, PackedCheckpoints) else None,
        )


__all__ = ["StoreCapabilities"]
