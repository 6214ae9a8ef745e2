"""With tokens configured, OAuth discovery answers 404 (this server has no authorization server) and every 401
carries ``WWW-Authenticate: Bearer`` saying a bearer token is needed.

Before, ``/.well-known/oauth-*`` answered 401 like any path, so Claude Code and mcp-remote (which probe them,
then try dynamic client registration) reported "Dynamic Client Registration rejected (HTTP 401)" instead of
"needs a token".
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from mcp_memory.server.auth import generate_token
from tests.http_helpers import INITIALIZE, MCP_HEADERS, ServerProcess, auth, server_env, token_config

PROJECT = str(uuid.uuid4())
TOKEN = generate_token()
DISCOVERY = [
    ("GET", "/.well-known/oauth-protected-resource"),
    ("GET", "/.well-known/oauth-protected-resource/mcp"),
    ("GET", "/.well-known/oauth-protected-resource/sse"),
    ("GET", "/.well-known/oauth-authorization-server"),
    ("GET", "/.well-known/oauth-authorization-server/mcp"),
    ("GET", "/.well-known/openid-configuration"),
    ("POST", "/register"),
    ("GET", "/authorize"),
    ("POST", "/token"),
]
GUARDED = [("POST", "/mcp"), ("GET", "/sse"), ("POST", "/messages/?session_id=0"), ("GET", "/metrics")]


@pytest.fixture(scope="module")
def with_tokens(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = server_env(
        tmp_path_factory.mktemp("oauth") / "memory.db",
        MCP_MEMORY_HTTP__TOKENS=token_config(("agents", TOKEN, [PROJECT])),
    )
    with ServerProcess(env) as proc:
        yield proc


@pytest.fixture(scope="module")
def without_tokens(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(server_env(tmp_path_factory.mktemp("oauth") / "memory.db")) as proc:
        yield proc


@pytest.mark.parametrize("server_name", ["with_tokens", "without_tokens"])
@pytest.mark.parametrize("token", [None, "wrong", TOKEN], ids=["no token", "wrong token", "valid token"])
def test_oauth_discovery_and_registration_paths_answer_404(
    request: pytest.FixtureRequest, server_name: str, token: str | None
) -> None:
    server: ServerProcess = request.getfixturevalue(server_name)
    with httpx.Client(base_url=server.url, timeout=30) as h:
        for method, path in DISCOVERY:
            r = h.request(method, path, headers=auth(token), json={} if method == "POST" else None)
            assert r.status_code == 404, (method, path, r.status_code, r.text[:200])
            assert "www-authenticate" not in r.headers


def test_every_401_carries_a_bearer_challenge(with_tokens: ServerProcess) -> None:
    with httpx.Client(base_url=with_tokens.url, timeout=30) as h:
        cases: dict[str, tuple[dict[str, str], str | None]] = {
            "no token": ({}, None),
            "wrong token": (auth("wrong"), "invalid_token"),
            "basic scheme": ({"Authorization": f"Basic {TOKEN}"}, "invalid_token"),
            "scheme only": ({"Authorization": "Bearer"}, "invalid_token"),
        }
        for name, (headers, error) in cases.items():
            for method, path in GUARDED:
                r = h.request(method, path, json=INITIALIZE, headers={**MCP_HEADERS, **headers})
                assert r.status_code == 401, (name, method, path, r.status_code)
                challenge = r.headers["www-authenticate"]
                assert challenge.startswith('Bearer realm="mcp-memory"'), (name, challenge)
                if error:
                    assert f'error="{error}"' in challenge, (name, challenge)
                else:
                    assert "error=" not in challenge, (name, challenge)  # RFC 6750: no error without credentials
        assert h.post("/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **auth(TOKEN)}).status_code == 200
