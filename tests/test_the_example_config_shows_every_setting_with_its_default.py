"""``config/mcp-memory.toml`` lists every setting with its default, commented out (README, docs/configuration.md).

Each commented ``key = value`` line is read as TOML under the table header above it (``# [http]``,
``# [[http.tokens]]``); the names found must be exactly the settings of ``Settings`` and its tables, and a setting
with a default shows that default (a setting without one, such as ``database_url``, shows an example instead).
"""

from __future__ import annotations

import re
import tomllib
import typing
from pathlib import Path

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from mcp_memory.config import Settings

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "mcp-memory.toml"
HEADER = re.compile(r"^#\s*\[\[?([a-z_.]+)\]\]?\s*$")
ENTRY = re.compile(r"^#\s*([a-z_][a-z0-9_]*\s*=.*)$")


def _table_model(annotation: object) -> type[BaseModel] | None:
    """The model of a table setting (``http``) or of an array of tables (``http.tokens``), else None."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _defaults(model: type[BaseModel], prefix: str = "") -> dict[str, object]:
    """Every setting's dotted name with its default (PydanticUndefined: none; tables map to None)."""
    out: dict[str, object] = {}
    for name, info in model.model_fields.items():
        dotted = prefix + name
        table = _table_model(info.annotation)
        if table is not None:
            out[dotted] = None
            out.update(_defaults(table, dotted + "."))
        else:
            out[dotted] = info.get_default(call_default_factory=True)
    return out


def _example() -> dict[str, object]:
    """The dotted names the example file shows, with the value of each one's first line (tables: None)."""
    shown: dict[str, object] = {}
    table = ""
    for line in EXAMPLE.read_text().splitlines():
        if header := HEADER.match(line):
            table = header.group(1) + "."
            shown.setdefault(header.group(1), None)
        elif entry := ENTRY.match(line):
            parsed = tomllib.loads(entry.group(1))
            for key, value in parsed.items():
                shown.setdefault(table + key, value)
    return shown


def test_the_example_config_names_every_setting_and_nothing_else() -> None:
    expected = set(_defaults(Settings))
    shown = set(_example())
    assert not expected - shown, f"settings missing from {EXAMPLE.name}: {sorted(expected - shown)}"
    assert not shown - expected, f"names in {EXAMPLE.name} that are no settings: {sorted(shown - expected)}"


def test_the_example_config_shows_each_default() -> None:
    shown = _example()
    wrong = {
        name: (shown.get(name), default)
        for name, default in _defaults(Settings).items()
        if default is not None and default is not PydanticUndefined and shown.get(name) != default
    }
    assert not wrong, f"{EXAMPLE.name} shows these (shown, default) instead of the defaults: {wrong}"
