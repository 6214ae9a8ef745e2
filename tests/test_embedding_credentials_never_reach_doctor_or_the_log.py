"""The embedding provider's credentials (a password in ``embedding_base_url``, the API key) never reach doctor's
report, an error message or the server's log, and an API key read from a file with its trailing line break (a
Kubernetes secret) works as the key it is."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcp_memory.cli_common import load_settings
from mcp_memory.embeddings import EmbeddingError, OpenAIEmbedding
from mcp_memory.errors import ConfigurationError
from tests.conftest import configure, made_sqlite_file
from tests.embedding_api import FakeEmbeddingAPI, running_api
from tests.stdio_raw import RawStdioServer

PASSWORD = "S3CRETPASS"
KEY = "sk-TOPSECRETKEY"


@pytest.fixture
def api() -> Iterator[FakeEmbeddingAPI]:
    with running_api() as served:
        yield served


def _with_password(api: FakeEmbeddingAPI) -> str:
    return api.url.replace("http://", f"http://alice:{PASSWORD}@")


def _provider_env(tmp_path: Path, base_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_MEMORY_")}
    env.update(
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_DATA_HOME=str(tmp_path / "data"),
        MCP_MEMORY_CONFIG="",
        MCP_MEMORY_DATABASE_URL=made_sqlite_file(f"sqlite+aiosqlite:///{tmp_path / 'memory.db'}"),
        MCP_MEMORY_EMBEDDING_PROVIDER="openai",
        MCP_MEMORY_EMBEDDING_BASE_URL=base_url,
        MCP_MEMORY_EMBEDDING_MODEL="fake",
        MCP_MEMORY_EMBEDDING_DIMENSION="64",
        MCP_MEMORY_EMBEDDING_MAX_RETRIES="0",
        **extra,
    )
    return env


def _doctor(env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "-m", "mcp_memory.cli", "doctor"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done, json.loads(done.stdout)


def test_a_password_in_the_base_url_stays_out_of_doctors_embedding_error(tmp_path: Path, api: FakeEmbeddingAPI) -> None:
    api.failing(500)
    done, report = _doctor(_provider_env(tmp_path, _with_password(api)))
    assert done.returncode == 1
    embedding = report["embedding"]
    assert isinstance(embedding, dict) and embedding["ok"] is False
    assert "alice:***@" in embedding["error"] and "answered 500" in embedding["error"]
    assert PASSWORD not in done.stdout + done.stderr
    # The URL's user part is still sent, as the basic authentication it stands for.
    credentials = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    assert api.requests[-1]["headers"]["authorization"] == f"Basic {credentials}"


def test_a_password_in_the_base_url_stays_out_of_the_servers_log(tmp_path: Path, api: FakeEmbeddingAPI) -> None:
    """At the default INFO level: httpx's own line for each request, and the warning of a failed embedding."""
    env = _provider_env(tmp_path, _with_password(api))
    del env["MCP_MEMORY_CONFIG"], env["MCP_MEMORY_DATABASE_URL"]  # RawStdioServer sets its own
    server = RawStdioServer(tmp_path, **env).initialize()
    try:
        project = str(uuid.uuid4())
        found = server.call_tool("search_episodes", id=2, project_id=project, query="deploy the billing service")
        assert not found.get("isError"), found
        assert api.requests, "the search did not reach the embedding API"
        api.failing(500)
        found = server.call_tool("search_episodes", id=3, project_id=project, query="roll back the release")
        assert not found.get("isError"), found  # full-text only
        server.wait_for_log(lambda line: "continuing without vectors" in line, within=30)
    finally:
        server.close()
    log = "".join(server.log)
    assert "alice:***@" in log
    assert PASSWORD not in log


@pytest.mark.anyio
async def test_a_header_the_request_cannot_carry_is_refused_without_quoting_it(api: FakeEmbeddingAPI) -> None:
    """h11's own error quotes the header (``Illegal header value b'Bearer sk-...\\n'``): never in the message."""
    provider = OpenAIEmbedding(base_url=api.url, model="m", dimension=64, api_key=KEY + "\n", max_retries=2)
    try:
        with pytest.raises(EmbeddingError) as caught:
            await provider.embed(["hello"])
    finally:
        await provider.aclose()
    assert KEY not in str(caught.value) and "Bearer" not in str(caught.value)
    assert "MCP_MEMORY_EMBEDDING_API_KEY" in str(caught.value)
    assert caught.value.transient is False  # repeating it cannot help
    assert api.requests == []


@pytest.mark.parametrize("where", ["env", "file"])
@pytest.mark.parametrize("written", [KEY + "\n", KEY + "\r\n", f"  {KEY}\t"])
def test_an_api_key_loses_its_surrounding_whitespace(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, where: str, written: str
) -> None:
    configure(clean_env, tmp_path, where, embedding_api_key=written)
    key = load_settings().embedding_api_key
    assert key is not None and key.get_secret_value() == KEY


# No environment variable can hold a NUL: that one from a settings file only.
INNER = [("env", "\n"), ("env", "\x7f"), ("env", "é"), ("file", "\n"), ("file", "\x00"), ("file", "é")]


@pytest.mark.parametrize(("where", "inner"), INNER)
def test_an_api_key_with_a_character_no_header_carries_is_refused_without_its_value(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, where: str, inner: str
) -> None:
    written = f"sk-TOP{inner}SECRETKEY"
    configure(clean_env, tmp_path, where, embedding_api_key=written)
    with pytest.raises(ConfigurationError, match="embedding_api_key") as caught:
        load_settings()
    assert "SECRETKEY" not in str(caught.value) and "sk-TOP" not in str(caught.value)


def test_doctor_embeds_with_a_key_read_with_its_line_break(tmp_path: Path, api: FakeEmbeddingAPI) -> None:
    done, report = _doctor(_provider_env(tmp_path, api.url, MCP_MEMORY_EMBEDDING_API_KEY=KEY + "\n"))
    assert report["embedding"] == {"ok": True, "dimension": 64}, done.stdout
    assert api.requests[-1]["headers"]["authorization"] == f"Bearer {KEY}"
    assert KEY not in done.stdout + done.stderr
