"""Settings and start-up: environment variables, database URLs, hook specs and config files. A mistake is a clear
configuration error at start-up (not a traceback later), and ``mcp-memory doctor`` names it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_memory import cli
from mcp_memory.cli_common import load_settings
from mcp_memory.config import Settings
from mcp_memory.config_sections import HttpSettings
from mcp_memory.errors import ConfigurationError
from mcp_memory.services.runtime import MemoryRuntime
from tests.conftest import configure, made_sqlite_file


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


def test_doctor_reports_misspelt_keys_inside_tables_and_token_entries(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = "123e4567-e89b-12d3-a456-426614174000"
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f"""database_url = "{db_url}"
[hooks]
spwan = ["tests.hooks_for_tests:record"]
[http]
port = 8765
alowed_origins = ["https://app.example.com"]
[[http.tokens]]
name = "ops"
sha256 = "{"a" * 64}"
projects = ["*"]
[[http.tokens]]
name = "billing"
sha256 = "{"b" * 64}"
projects = ["{project}"]
default_projct = "{project}"
"""
    )
    clean_env.setenv("MCP_MEMORY_CONFIG", str(cfg))
    made_sqlite_file(db_url)
    assert cli.main(["doctor"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False
    assert out["unknown_settings"] == ["hooks.spwan", "http.alowed_origins", "http.tokens[1].default_projct"]
    cfg.write_text(cfg.read_text().replace("spwan", "spawn").replace("alowed", "allowed").replace("projct", "project"))
    assert cli.main(["doctor"]) == 0
    assert "unknown_settings" not in json.loads(capsys.readouterr().out)


def test_serve_names_misspelt_keys_of_the_settings_file_and_starts(tmp_path: Path, db_url: str) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'database_url = "{db_url}"\nmax_keys_per_sesion = 5\n[http]\nalowed_origins = []\n')
    served = _cli(_bare_env(tmp_path, MCP_MEMORY_CONFIG=str(cfg)), "serve")  # stdin closed: ends at once
    assert served.returncode == 0 and served.stdout == "", served.stderr
    assert "keys that are not settings, ignored (misspelt?): http.alowed_origins, max_keys_per_sesion" in served.stderr


def test_a_top_level_key_in_another_case_is_applied_and_not_reported_but_one_inside_a_table_is(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The settings source reads the file's top-level keys in any case and the keys of its tables only as written:
    what doctor reports as not a setting is exactly what was ignored."""
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'database_url = "{db_url}"\nCALL_TIMEOUT_SECONDS = 3\n[HTTP]\nPORT = 1234\n')
    clean_env.setenv("MCP_MEMORY_CONFIG", str(cfg))
    made_sqlite_file(db_url)
    assert cli.main(["doctor"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["settings"]["call_timeout_seconds"] == 3.0 and out["settings"]["http"]["port"] == 8765
    assert out["unknown_settings"] == ["HTTP.PORT"]


def test_a_misspelt_environment_variable_fails_doctor_and_is_named_by_serve(tmp_path: Path) -> None:
    """A misspelt ``MCP_MEMORY_REDIS_URL`` would leave the server on its embedded store: doctor fails naming it, serve
    says so and starts. Settings in any case and nested ones (``__``) are settings; the settings file's variable,
    the crash tests' fault point and the test suite's own variables are not reported."""
    db = tmp_path / "memory.db"
    good = {
        "MCP_MEMORY_DATABASE_URL": f"sqlite+aiosqlite:///{db}",
        "MCP_MEMORY_HTTP__PORT": "8766",
        "mcp_memory_call_timeout_seconds": "2",
        "MCP_MEMORY_CONFIG": "",
        "MCP_MEMORY_TEST_REDIS_URL": "redis://127.0.0.1:6379/0",
    }
    assert _cli(_bare_env(tmp_path, **good), "serve").returncode == 0  # makes the file, so doctor checks the rest
    doctor = _cli(_bare_env(tmp_path, **good), "doctor")
    assert doctor.returncode == 0 and "unknown_environment" not in json.loads(doctor.stdout), doctor.stdout
    typos = {**good, "MCP_MEMORY_REDIS_ULR": "redis://127.0.0.1:6379/0", "MCP_MEMORY_HTTP__PROT": "1"}
    doctor = _cli(_bare_env(tmp_path, **typos), "doctor")
    assert doctor.returncode == 1
    assert json.loads(doctor.stdout)["unknown_environment"] == ["MCP_MEMORY_HTTP__PROT", "MCP_MEMORY_REDIS_ULR"]
    served = _cli(_bare_env(tmp_path, **typos), "serve")
    assert served.returncode == 0
    assert "environment variables that are not settings, ignored (misspelt?): MCP_MEMORY_HTTP__PROT, " in served.stderr


SECRET_URLS = [
    # A password with a slash, as SQLAlchemy reads it (up to the "@").
    ({"MCP_MEMORY_DATABASE_URL": "postgresql+asyncpg://u:SEC/RET@127.0.0.1:1/db"}, "RET"),
    # A password as a query parameter, which asyncpg and redis-py take.
    ({"MCP_MEMORY_DATABASE_URL": "postgresql+asyncpg://u@127.0.0.1:1/db?password=SECRETQ"}, "SECRETQ"),
    ({"MCP_MEMORY_REDIS_URL": "redis://127.0.0.1:1/0?password=SECRETR"}, "SECRETR"),
    # A URL that does not parse, in the configuration error that names it.
    ({"MCP_MEMORY_REDIS_URL": "redis://:SEC/RET2@127.0.0.1:6379/abc"}, "RET2"),
]


@pytest.mark.parametrize(("settings", "secret"), SECRET_URLS)
def test_passwords_in_store_urls_never_reach_doctor_or_the_log(
    tmp_path: Path, settings: dict[str, str], secret: str
) -> None:
    env = _bare_env(tmp_path, **settings)
    for command in ("doctor", "serve"):
        done = _cli(env, command)
        assert secret not in done.stdout + done.stderr, (command, done.stdout, done.stderr)
        assert "***" in done.stdout + done.stderr, (command, done.stdout, done.stderr)


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``mcp-memory ARGS`` as a subprocess with stdin closed (a stdio serve ends at once if it starts)."""
    return subprocess.run(
        [sys.executable, "-m", "mcp_memory.cli", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _bare_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Our environment without MCP_MEMORY_* settings, with the user dirs under ``tmp_path``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_MEMORY_")}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "config"), XDG_DATA_HOME=str(tmp_path / "data"), **extra)
    return env


def test_a_config_file_named_but_missing_stops_serve_and_fails_doctor(tmp_path: Path) -> None:
    missing = tmp_path / "mcp-memory.tmol"
    env = _bare_env(tmp_path, MCP_MEMORY_CONFIG=str(missing))
    serve = _cli(env, "serve")
    assert serve.returncode == 2, serve.stderr
    assert serve.stderr.splitlines() == [
        f"mcp-memory: configuration error: MCP_MEMORY_CONFIG names {str(missing)!r}, which is not a file (set it to "
        "an existing TOML file, or to an empty value to read no settings file)"
    ]
    assert not (tmp_path / "data").exists()  # no default store was created in its place
    doctor = _cli(env, "doctor")
    assert doctor.returncode == 1
    report = json.loads(doctor.stdout)
    assert report["ok"] is False and "MCP_MEMORY_CONFIG" in report["error"]
    for where in (tmp_path, "~/mcp-memory-no-such-dir"):  # a directory is not a file either
        assert _cli(_bare_env(tmp_path, MCP_MEMORY_CONFIG=str(where)), "serve").returncode == 2


def test_an_empty_config_variable_reads_no_settings_file(tmp_path: Path, db_url: str) -> None:
    user_file = tmp_path / "config" / "mcp-memory" / "config.toml"
    user_file.parent.mkdir(parents=True)
    user_file.write_text("max_keys_per_session = 7\n")
    env = _bare_env(tmp_path, MCP_MEMORY_DATABASE_URL=made_sqlite_file(db_url))
    assert json.loads(_cli(env, "doctor").stdout)["settings"]["max_keys_per_session"] == 7  # unset: the user's file
    report = json.loads(_cli({**env, "MCP_MEMORY_CONFIG": ""}, "doctor").stdout)
    assert report["ok"] is True and report["config_file"] is None
    assert report["settings"]["max_keys_per_session"] == 10_000


FLOAT_SETTINGS = [name for name, f in Settings.model_fields.items() if f.annotation is float] + [
    f"http__{name}" for name, f in HttpSettings.model_fields.items() if f.annotation is float
]


@pytest.mark.parametrize("name", FLOAT_SETTINGS)
def test_an_infinite_duration_is_a_configuration_error(clean_env: pytest.MonkeyPatch, name: str) -> None:
    clean_env.setenv(f"MCP_MEMORY_{name.upper()}", "inf")
    with pytest.raises(ConfigurationError, match=name.replace("__", ".")):
        load_settings()


def test_serve_refuses_an_infinite_idle_timeout_in_one_line(tmp_path: Path, db_url: str) -> None:
    env = _bare_env(
        tmp_path,
        MCP_MEMORY_CONFIG="",
        MCP_MEMORY_DATABASE_URL=db_url,
        MCP_MEMORY_HTTP__SESSION_IDLE_TIMEOUT_SECONDS="inf",
    )
    serve = _cli(env, "serve", "--transport", "http", "--port", "0")
    assert serve.returncode == 2, serve.stderr
    assert "Traceback" not in serve.stderr
    assert serve.stderr.startswith("mcp-memory: configuration error: ")
    assert "http.session_idle_timeout_seconds" in serve.stderr and "finite number" in serve.stderr


RAW_TOKEN = "mcpm_RAWSECRETTOKENvalue1234567890"


@pytest.mark.parametrize("where", ["env", "file"])
def test_a_raw_token_pasted_as_its_hash_is_never_echoed(tmp_path: Path, db_url: str, where: str) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[[http.tokens]]\nname = "ops"\nsha256 = "{RAW_TOKEN}"\nprojects = ["*"]\n')
    env = _bare_env(tmp_path, MCP_MEMORY_DATABASE_URL=db_url, MCP_MEMORY_CONFIG=str(cfg) if where == "file" else "")
    if where == "env":
        env["MCP_MEMORY_HTTP__TOKENS"] = json.dumps([{"name": "ops", "sha256": RAW_TOKEN, "projects": ["*"]}])
    serve = _cli(env, "serve", "--transport", "http", "--port", "0")
    assert serve.returncode == 2
    source = f"{cfg} or MCP_MEMORY_* variables" if where == "file" else "MCP_MEMORY_* variables"
    assert serve.stderr.splitlines() == [
        f"mcp-memory: configuration error: invalid settings ({source}): http.tokens.0.sha256: String should match "
        "pattern '^[0-9a-fA-F]{64}$'"
    ]
    doctor = _cli(env, "doctor")
    assert doctor.returncode == 1 and "http.tokens.0.sha256" in json.loads(doctor.stdout)["error"]
    assert RAW_TOKEN not in serve.stderr + doctor.stdout + doctor.stderr


def test_several_bad_settings_are_named_on_one_line_without_their_values(tmp_path: Path) -> None:
    env = _bare_env(tmp_path, MCP_MEMORY_CONFIG="", MCP_MEMORY_MAX_KEYS_PER_SESSION="lots", MCP_MEMORY_LOG_LEVEL="LOUD")
    serve = _cli(env, "serve")
    assert serve.returncode == 2
    [line] = serve.stderr.splitlines()
    assert "max_keys_per_session: Input should be a valid integer" in line and "log_level: Input should be" in line
    assert "lots" not in line and "LOUD" not in line


@pytest.mark.parametrize("where", ["env", "file"])
@pytest.mark.parametrize("value", ["0.5", "2.5", "7"])
def test_the_keep_alive_timeout_takes_fractions_of_a_second(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, where: str, value: str
) -> None:
    """uvicorn takes the keep-alive timeout in seconds as a float: an operator's 0.5 or 2.5 is a setting."""
    configure(clean_env, tmp_path, where, http__keep_alive_timeout_seconds=value)
    assert load_settings().http.keep_alive_timeout_seconds == float(value)


@pytest.mark.parametrize("value", ["0", "-1"])
def test_a_keep_alive_timeout_not_above_zero_is_a_configuration_error(
    clean_env: pytest.MonkeyPatch, value: str
) -> None:
    clean_env.setenv("MCP_MEMORY_HTTP__KEEP_ALIVE_TIMEOUT_SECONDS", value)
    with pytest.raises(ConfigurationError, match=r"http\.keep_alive_timeout_seconds"):
        load_settings()
