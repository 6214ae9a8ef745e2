"""The export resource: one session as an export file (docs/export-format.md), ``application/jsonl``.

``memory://projects/{project_id}/agents/{agent_instance_id}/sessions/{session_id}/export`` answers what
``mcp-memory export --project P --agent A --session S`` writes (without vectors), within the request's token scope
(another project is ``forbidden`` before any lookup) and bounded: a session whose export would exceed
:data:`MAX_EXPORT_BYTES` is ``too_large`` (the CLI exports any size).
"""

from __future__ import annotations

from mcp_memory.errors import MemoryServiceError, TooLarge, Unavailable
from mcp_memory.server.app import MemoryServer
from mcp_memory.server.listing import SESSION_URI
from mcp_memory.server.protocol import RefusedRead
from mcp_memory.server.resources import read_session, template
from mcp_memory.stores.transfer import Selection

JSONL = "application/jsonl"
EXPORT_URI = SESSION_URI + "/export"
MAX_EXPORT_BYTES = 16 * 1024 * 1024
"""The largest export the resource answers (a resource is read whole into one message)."""


def register_export_resource(server: MemoryServer) -> None:
    """Register the export resource template on ``server``."""
    rt = server.runtime

    @template(
        server,
        EXPORT_URI,
        "session-export",
        "The session as an mcp-memory export file (JSON Lines: records, counts, checksum).",
        JSONL,
    )
    async def export_resource(project_id: str, agent_instance_id: str, session_id: str) -> str:
        try:
            scope, _ = await read_session(rt, project_id, agent_instance_id, session_id)
            if rt.transfer is None:
                raise Unavailable("this server's durable store does not support export")
            size = 0
            parts: list[bytes] = []
            async for line in rt.transfer.export(
                Selection(scope.project_id, scope.agent_instance_id, scope.session_id)
            ):
                size += len(line)
                if size > MAX_EXPORT_BYTES:
                    raise TooLarge(
                        f"the export of session '{scope.session_id}' exceeds {MAX_EXPORT_BYTES} bytes; "
                        "use `mcp-memory export --project P --agent A --session S` instead"
                    )
                parts.append(line)
        except MemoryServiceError as exc:
            raise RefusedRead(exc) from None
        return b"".join(parts).decode()


__all__ = ["EXPORT_URI", "MAX_EXPORT_BYTES", "register_export_resource"]
