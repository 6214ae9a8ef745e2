"""Every true/false, integer and number argument of every tool, owner tools included, is read strictly: the string
``"true"`` or ``"5"``, or ``1`` for a flag, is ``invalid_argument`` (docs/contract.md), never coerced. A lax flag
once let ``forget_episodes(confirm="true")`` delete episodes."""

from __future__ import annotations

import types
import typing
from pathlib import Path

import pytest

from mcp_memory.config import Settings
from mcp_memory.server.assembly import create_server
from mcp_memory.services.runtime import MemoryRuntime

pytestmark = pytest.mark.anyio

SCALARS = (bool, int, float)


def _scalar(annotation: object) -> bool:
    """A flag or number annotation, alone or with None."""
    if annotation in SCALARS:
        return True
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return any(arg in SCALARS for arg in typing.get_args(annotation))
    return False


async def test_every_flag_and_number_argument_of_every_tool_is_strict(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'strict.db'}", owner_tools=True)
    async with MemoryRuntime(settings) as runtime:
        server = create_server(runtime=runtime)
        checked, lax = [], []
        for tool in server._tool_manager.list_tools():
            for name, field in tool.fn_metadata.arg_model.model_fields.items():
                if not _scalar(field.annotation):
                    continue
                checked.append(f"{tool.name}.{name}")
                if not any(getattr(meta, "strict", None) for meta in field.metadata):
                    lax.append(f"{tool.name}.{name}")
        assert "forget_episodes.confirm" in checked and "pause.keep" in checked
        assert lax == []
