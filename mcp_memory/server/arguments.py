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


def lean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """An input schema as a model reads it, without what costs tokens and says nothing (issue 12: the tool list
    is paid for in every conversation): no generated ``title`` (the property's name says it), and an optional
    argument (``X | None = None``) published as plain ``X`` without ``"default": null`` (omitting it is how a
    caller says "none"; a client that sends null anyway is still accepted, validation is by the argument model)."""
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" or (key == "additionalProperties" and value is True):
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: lean_schema(prop) for name, prop in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = lean_schema(value)
        elif key in ("anyOf", "oneOf") and isinstance(value, list):
            out[key] = [lean_schema(v) if isinstance(v, dict) else v for v in value]
        else:
            out[key] = value
    variants = out.get("anyOf")
    if isinstance(variants, list) and out.get("default", ...) is None and {"type": "null"} in variants:
        rest = [v for v in variants if v != {"type": "null"}]
        if len(rest) == 1:
            del out["anyOf"], out["default"]
            out = {**rest[0], **out}
    return out


def keep_arguments_verbatim(tool: Tool) -> None:
    """Make ``tool`` validate its arguments as received (idempotent).

    The SDK's metadata is copied field by field (whatever fields this SDK version has), so the argument model,
    the output schema and the output model stay exactly the ones the SDK derived from the function."""
    meta = tool.fn_metadata
    if isinstance(meta, VerbatimArguments):
        return
    fields = {name: getattr(meta, name) for name in type(meta).model_fields}
    tool.fn_metadata = VerbatimArguments(**fields)


__all__ = ["VerbatimArguments", "keep_arguments_verbatim", "lean_schema"]
