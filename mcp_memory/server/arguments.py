"""Tool arguments reach the tools exactly as the client sent them.

The SDK's ``FuncMetadata.pre_parse_json`` decodes every string argument whose parameter is not annotated
exactly ``str`` as JSON when it can (a workaround for clients that send lists and objects as JSON text). For
our tools that silently changes data: ``memory_set(value="[1,2]")`` would store a list, ``label='["a"]'``
would be refused, and ``checkpoint_id="null"`` would become "no checkpoint id" (resume the newest). Here a
string is a string: an argument is validated against the published input schema as sent, and a client that
sends an array or object as text gets ``invalid_argument`` naming the argument, never a guess.
"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver.tools.base import Tool
from mcp.server.mcpserver.utilities.func_metadata import FuncMetadata


class VerbatimArguments(FuncMetadata):
    """``FuncMetadata`` without the JSON pre-parse: arguments are validated exactly as received."""

    def pre_parse_json(self, data: dict[str, Any]) -> dict[str, Any]:
        return dict(data)


def keep_arguments_verbatim(tool: Tool) -> None:
    """Make ``tool`` validate its arguments as received (idempotent).

    The SDK's metadata is copied field by field (whatever fields this SDK version has), so the argument model,
    the output schema and the output model stay exactly the ones the SDK derived from the function."""
    meta = tool.fn_metadata
    if isinstance(meta, VerbatimArguments):
        return
    fields = {name: getattr(meta, name) for name in type(meta).model_fields}
    tool.fn_metadata = VerbatimArguments(**fields)


__all__ = ["VerbatimArguments", "keep_arguments_verbatim"]
