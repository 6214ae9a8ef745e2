"""The Redis store's Lua scripts live in ``mcp_memory/stores/redis/lua/*.lua``: each one the store runs is there,
none is left unused, and the package data declared in pyproject.toml installs them (a non-editable install has
no source tree to read them from)."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

from mcp_memory.stores.redis.scripts import NAMES, USE_LIB, bodies


def test_every_script_is_a_lua_file_of_the_package_and_every_lua_file_is_used() -> None:
    files = {p.name for p in resources.files("mcp_memory.stores.redis").joinpath("lua").iterdir()}
    assert files == {f"{name}.lua" for name in (*NAMES, "lib")}
    texts = bodies()
    lib = resources.files("mcp_memory.stores.redis").joinpath("lua", "lib.lua").read_text(encoding="utf-8")
    for name in NAMES:
        assert texts[name].startswith(lib) == (name in USE_LIB), name


def test_pyproject_installs_the_lua_files() -> None:
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert "lua/*.lua" in pyproject["tool"]["setuptools"]["package-data"]["mcp_memory.stores.redis"]
