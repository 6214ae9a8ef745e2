"""The lines ``export`` writes (docs/export-format.md): each record kind as the JSON object of its line, and a line as
the bytes of the file. What the import reads back, and how strictly, is :mod:`~mcp_memory.services.export_format`'s.
"""

from __future__ import annotations

from array import array
from datetime import datetime
from typing import Any

import orjson

from mcp_memory.models import CheckpointData, Item, Scope, SessionInfo, iso, to_datetime
from mcp_memory.stores.ports import EventRecord
from mcp_memory.stores.transfer import EpisodeEntry


def vector_out(vector: list[float]) -> list[float]:
    """A vector as written: each component as the float32 the stores keep, in 9 significant digits (enough to
    name a float32 exactly), so the same vector reads the same from SQLite and from Postgres."""
    return [float(f"{x:.9g}") for x in array("f", vector)]


def _scope_fields(scope: Scope) -> dict[str, Any]:
    return {"project_id": scope.project, "agent_instance_id": scope.agent, "session_id": scope.session_id}


def _opt_time(dt: datetime | None) -> str | None:
    return None if dt is None else iso(dt)


def session_line(info: SessionInfo) -> dict[str, Any]:
    return {
        "kind": "session",
        "project_id": str(info.project_id),
        "agent_instance_id": str(info.agent_instance_id),
        "session_id": info.session_id,
        "agent_type_id": None if info.agent_type_id is None else str(info.agent_type_id),
        "status": info.status.value,
        "sealed": info.sealed,
        "created_at": iso(info.created_at),
        "updated_at": iso(info.updated_at),
        "metadata": info.metadata,
        "episode_id": None if info.episode_id is None else str(info.episode_id),
        "terminated_at": _opt_time(info.terminated_at),
        "terminate_result": info.terminate_result,
    }


def working_line(scope: Scope, key: str, item: Item, now: float) -> dict[str, Any]:
    remaining = None if item.expires_at is None else round(max(0.0, item.expires_at - now), 3)
    return {
        "kind": "working",
        **_scope_fields(scope),
        "key": key,
        "value": item.value,
        "expires_at": item.expires_at,
        "ttl_remaining": remaining,
    }


def checkpoint_line(scope: Scope, cp: CheckpointData) -> dict[str, Any]:
    info = cp.info
    return {
        "kind": "checkpoint",
        **_scope_fields(scope),
        "checkpoint_id": info.checkpoint_id,
        "created_at": iso(info.created_at),
        "keys_count": info.keys_count,
        "bytes": info.bytes,
        "label": info.label,
        "keep": info.keep,
        "content_hash": info.content_hash,
        "metadata": info.metadata,
        "state": {k: [cp.items[k].value, cp.items[k].expires_at] for k in sorted(cp.items)},
    }


def event_line(scope: Scope, ev: EventRecord) -> dict[str, Any]:
    return {
        "kind": "event",
        **_scope_fields(scope),
        "event_type": ev.event_type,
        "at": iso(to_datetime(ev.at)),
        "duration_ms": ev.duration_ms,
        "outcome": ev.outcome,
        "detail": dict(ev.detail),
    }


def episode_line(entry: EpisodeEntry, vectors: bool) -> dict[str, Any]:
    ep = entry.episode
    line: dict[str, Any] = {
        "kind": "episode",
        "episode_id": str(ep.episode_id),
        "project_id": str(ep.project_id),
        "agent_instance_id": str(ep.agent_instance_id),
        "session_id": ep.session_id,
        "task_type": ep.task_type,
        "task_description": ep.task_description,
        "outcome": ep.outcome.value,
        "outcome_details": ep.outcome_details,
        "lessons_learned": ep.lessons_learned,
        "importance_score": ep.importance_score,
        "context_summary": ep.context_summary,
        "metadata": ep.metadata,
        "created_at": iso(ep.created_at),
    }
    if vectors:
        line["embedding"] = None if entry.embedding is None else vector_out(entry.embedding)
        line["embedding_model"] = entry.embedding_model
    return line


def dump(line: dict[str, Any]) -> bytes:
    """One line of the file, ``\\n`` included."""
    return orjson.dumps(line) + b"\n"


__all__ = ["checkpoint_line", "dump", "episode_line", "event_line", "session_line", "vector_out", "working_line"]
