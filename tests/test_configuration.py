"""Settings and start-up: environment variables, database URLs, hook specs and config files. A mistake is a clear
configuration error at start-up (not a traceback later), and ``mcp-memory doctor`` names it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcp_memory import cli
from mcp_memory.config import Settings
from mcp_memory.errors import ConfigurationError
from mcp_memory.services.runtime import MemoryRuntime


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No inherited MCP_MEMORY_* variables and no user config file."""
    import os

    for name in list(os.environ):
        if name.startswith("MCP_MEMORY_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MCP_MEMORY_CONFIG", str(tmp_path / "absent.toml"))
    return monkeypatch


def test_hooks_from_an_env_var_as_a_comma_list(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("MCP_MEMORY_HOOKS__PAUSE", "tests.hooks_for_tests:record, tests.hooks_for_tests:explode")
    clean_env.setenv("MCP_MEMORY_HOOKS__TERMINATE", '["tests.hooks_for_tests:record"]')
    settings = Settings()
    assert settings.hooks.pause == ["tests.hooks_for_tests:record", "tests.hooks_for_tests:explode"]
    assert settings.hooks.terminate == ["tests.hooks_for_tests:record"]


def test_plain_sqlite_url_and_home_paths_are_resolved(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("HOME", str(tmp_path))
    assert Settings(database_url="sqlite:///x.db").resolved_database_url() == "sqlite+aiosqlite:///x.db"
    resolved = Settings(database_url="sqlite+aiosqlite:///~/mem/x.db").resolved_database_url()
    assert resolved == f"sqlite+aiosqlite:///{tmp_path}/mem/x.db"


@pytest.mark.parametrize("url", ["sqlite+aiosqlite://", "sqlite+aiosqlite:///:memory:"])
def test_in_memory_databases_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError, match="in-memory"):
        MemoryRuntime(Settings(database_url=url))


def test_a_missing_hook_module_is_a_configuration_error(db_url: str) -> None:
    with pytest.raises(ConfigurationError, match="no_such_module"):
        MemoryRuntime(Settings(database_url=db_url, hooks={"pause": ["no_such_module:f"]}))


def test_broken_toml_is_a_clear_error_not_a_traceback(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("max_keys_per_session = = 3\n")
    clean_env.setenv("MCP_MEMORY_CONFIG", str(bad))
    assert cli.main(["doctor"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and "invalid settings" in out["error"]
    assert cli.main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "configuration error" in err and "Traceback" not in err


def test_doctor_reports_misspelt_settings(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'database_url = "{db_url}"\nmax_keys_per_sesion = 3\n')
    clean_env.setenv("MCP_MEMORY_CONFIG", str(cfg))
    assert cli.main(["doctor"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["unknown_settings"] == ["max_keys_per_sesion"]
