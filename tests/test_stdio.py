"""``mcp-memory serve`` as a subprocess on stdio, the way Claude Desktop starts it, and ``mcp-memory doctor``.

The SDK's stdio client starts the server with ``get_default_environment() | params.env`` (a safe subset of
our environment, then ours over it), so ``env`` below carries the whole configuration: the database file, and
``MCP_MEMORY_CONFIG`` set but empty (no settings file) so that the developer's own config file is never read.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from tests.conftest import made_sqlite_file

pytestmark = pytest.mark.anyio

EXE = Path(sys.executable).parent / "mcp-memory"
JSON = "application/json"
TIMEOUT = 60


def server_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_MEMORY_")}
    env["MCP_MEMORY_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'desktop.db'}"
    env["MCP_MEMORY_CONFIG"] = ""
    # The installation's identity (identity.json) goes to the test's own data directory, not the user's.
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    env.update(extra)
    return env


class Session:
    """A stdio client that records any line of server stdout that is not a JSON-RPC message."""

    def __init__(self, env: dict[str, str], command: str = str(EXE), args: tuple[str, ...] = ("serve",)) -> None:
        self.faults: list[Exception] = []

        async def on_message(message: Any) -> None:
            if isinstance(message, Exception):
                self.faults.append(message)

        params = StdioServerParameters(command=command, args=list(args), env=env)
        self.client = Client(params, message_handler=on_message, read_timeout_seconds=TIMEOUT)

    async def __aenter__(self) -> Session:
        await self.client.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.client.__aexit__(*exc)
        assert self.faults == [], f"the server wrote non-protocol output to stdout: {self.faults}"

    async def ok(self, tool: str, **arguments: Any) -> dict[str, Any]:
        result = await self.client.call_tool(tool, arguments)
        assert not result.is_error, f"{tool}: {result.content[0].text}"  # type: ignore[union-attr]
        assert result.structured_content is not None
        return result.structured_content

    async def error(self, tool: str, **arguments: Any) -> str:
        result = await self.client.call_tool(tool, arguments)
        assert result.is_error
        text: str = result.content[0].text  # type: ignore[union-attr]
        assert "Traceback" not in text
        return text

    async def read(self, uri: str) -> Any:
        result = await self.client.read_resource(uri)
        assert len(result.contents) == 1 and result.contents[0].mime_type == JSON
        return json.loads(result.contents[0].text)  # type: ignore[union-attr]


def test_console_script_exists() -> None:
    assert EXE.is_file() and os.access(EXE, os.X_OK), f"{EXE} is not installed (pip install -e .)"


async def test_stdio_session_walk_and_restart(tmp_path: Path) -> None:
    project, agent = str(uuid.uuid4()), str(uuid.uuid4())
    # Claude Desktop users configure their project once; tools then need no project_id.
    env = server_env(tmp_path, MCP_MEMORY_PROJECT_ID=project)
    s = {"agent_instance_id": agent, "session_id": "desktop-1"}
    uri = f"memory://projects/{project}/agents/{agent}/sessions/desktop-1"
    state: dict[str, Any] = {f"note/{i}": {"i": i, "text": f"note {i} ✓"} for i in range(12)}
    state["goal"] = "write the quarterly report"

    with anyio.fail_after(4 * TIMEOUT):
        async with Session(env) as srv:
            c = srv.client
            assert c.server_info is not None and c.server_info.name == "mcp-memory"
            # The default list: owner tools (forget, edit, delete) are off unless MCP_MEMORY_OWNER_TOOLS is set.
            assert len((await c.list_tools()).tools) == 13
            assert len((await c.list_resource_templates()).resource_templates) == 7

            assert (await srv.ok("spawn", **s, initial_state={"goal": state["goal"]}))["initial_items"] == 1
            for key, value in state.items():
                await srv.ok("memory_set", **s, key=key, value=value)
            assert (await srv.ok("memory_list", **s))["keys"] == sorted(state)
            assert (await srv.ok("memory_get", **s, key="note/3"))["value"] == state["note/3"]

            paused = await srv.ok("pause", **s, label="end of day")
            cp = paused["checkpoint_id"]
            assert paused["items_saved"] == len(state)

            await srv.ok("memory_set", **s, key="goal", value="changed")
            await srv.ok("memory_delete", **s, key="note/0")
            resumed = await srv.ok("resume", **s)
            assert resumed["checkpoint_id"] == cp and resumed["items_restored"] == len(state)
            assert (await srv.ok("memory_get", **s, key="goal"))["value"] == state["goal"]
            assert (await srv.ok("memory_list", **s))["keys"] == sorted(state)

            cp2 = (await srv.ok("pause", **s, checkpoint_id="manual-2"))["checkpoint_id"]
            listed = await srv.ok("list_checkpoints", **s)
            assert [x["checkpoint_id"] for x in listed["checkpoints"]] == [cp2, cp]
            assert listed["checkpoints"][1]["label"] == "end of day"

            text = await srv.error("resume", **s, checkpoint_id="missing")
            assert text.startswith("not_found: ")
            text = await srv.error("memory_get", agent_instance_id=agent, session_id="x" * 10_000, key="k")
            assert text.startswith("invalid_argument: ") and "x" * 10_000 not in text

            # Every resource form.
            live = await srv.read(uri)
            assert live["status"] == "paused" and live["working_memory"] == state
            cps = await srv.read(uri + "/checkpoints")
            assert [x["checkpoint_id"] for x in cps["checkpoints"]] == [cp2, cp]
            one = await srv.read(f"{uri}/checkpoints/{cp}")
            assert one["state"] == state and one["label"] == "end of day"

            ended = await srv.ok(
                "terminate",
                **s,
                task_description="Write the quarterly report",
                lessons_learned=["start from last quarter's template"],
            )
            episode = ended["episode_id"]
            assert ended["state_items_consolidated"] == len(state)
            assert await srv.ok("terminate", **s) == ended

            hits = (await srv.ok("search_episodes", query="quarterly report"))["episodes"]
            assert hits and hits[0]["episode_id"] == episode
            episodes = await srv.read(f"memory://projects/{project}/episodes")
            assert [e["episode_id"] for e in episodes["episodes"]] == [episode]
            assert (await srv.read(f"memory://projects/{project}/episodes/{episode}"))["outcome"] == "success"
            listing = await c.list_resources()
            assert {f"{uri}/checkpoints/{cp}", f"memory://projects/{project}/episodes/{episode}"} <= {
                str(r.uri) for r in listing.resources
            }

            # A session left paused when the app quits.
            p2 = {"agent_instance_id": agent, "session_id": "desktop-2"}
            await srv.ok("spawn", **p2, initial_state={"draft": "chapter 1", "n": 1})
            await srv.ok("memory_set", **p2, key="n", value=2)
            cp_paused = (await srv.ok("pause", **p2))["checkpoint_id"]

        # A new server process on the same file: checkpoints, episodes and the paused session are all there.
        async with Session(env) as srv:
            listed = await srv.ok("list_checkpoints", **s)
            assert [x["checkpoint_id"] for x in listed["checkpoints"]] == [cp2, cp]
            assert (await srv.read(f"{uri}/checkpoints/{cp}"))["state"] == state
            assert (await srv.read(uri))["status"] == "terminated"
            hits = (await srv.ok("search_episodes", query="quarterly report"))["episodes"]
            assert [h["episode_id"] for h in hits] == [episode]
            assert (await srv.ok("terminate", **s))["episode_id"] == episode

            assert (await srv.read(f"memory://projects/{project}/agents/{agent}/sessions/desktop-2"))["status"] == (
                "paused"
            )
            resumed = await srv.ok("resume", **p2)
            assert resumed["checkpoint_id"] == cp_paused and resumed["items_restored"] == 2
            assert (await srv.ok("memory_get", **p2, key="n"))["value"] == 2


async def test_two_server_processes_share_the_file(tmp_path: Path) -> None:
    project, agent = str(uuid.uuid4()), str(uuid.uuid4())
    env = server_env(tmp_path)
    s = {"project_id": project, "agent_instance_id": agent, "session_id": "shared"}
    with anyio.fail_after(4 * TIMEOUT):
        async with Session(env) as first, Session(env) as second:
            await first.ok("spawn", **s, initial_state={"a": 1})
            cp = (await first.ok("pause", **s, label="from the first"))["checkpoint_id"]
            listed = await second.ok("list_checkpoints", **s)
            assert [x["checkpoint_id"] for x in listed["checkpoints"]] == [cp]
            await second.ok("memory_set", **s, key="b", value=2)
            assert (await first.ok("memory_list", **s))["keys"] == ["a", "b"]
            text = await second.error("spawn", **s)
            assert text.startswith("conflict: ")


async def test_stray_stdout_output_would_be_caught(tmp_path: Path) -> None:
    """The check behind every stdio test: a line on stdout that is not JSON-RPC fails the session."""
    noisy = "print('hello from the server', flush=True); import sys; from mcp_memory.cli import main; sys.exit(main())"
    session = Session(server_env(tmp_path), command=sys.executable, args=("-c", noisy))
    with anyio.fail_after(2 * TIMEOUT), pytest.raises(AssertionError, match="non-protocol output"):
        async with session as srv:
            await srv.error(  # not_found (an unknown session): any answer will do
                "memory_list", project_id=str(uuid.uuid4()), agent_instance_id=str(uuid.uuid4()), session_id="s"
            )


async def test_stdio_without_default_project_uses_the_installation_identity(tmp_path: Path) -> None:
    """No project configured: on stdio the installation's identity is the default (tests/test_default_identity.py)."""
    with anyio.fail_after(2 * TIMEOUT):
        async with Session(server_env(tmp_path)) as srv:
            assert (await srv.ok("spawn", session_id="s"))["status"] == "running"
    assert (tmp_path / "data" / "mcp-memory" / "identity.json").is_file()


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    with anyio.fail_after(TIMEOUT):
        done = await anyio.run_process([str(EXE), *args], input=b"", env=env, check=False)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def test_doctor(tmp_path: Path) -> None:
    env = server_env(tmp_path)
    # No file yet: doctor says so and creates nothing (a mistyped path is not a store that lost everything).
    code, out, _ = await run_cli("doctor", env=env)
    assert code == 1 and not (tmp_path / "desktop.db").exists()
    assert json.loads(out)["error"].startswith(f"no SQLite file at {tmp_path / 'desktop.db'}")
    made_sqlite_file(env["MCP_MEMORY_DATABASE_URL"])
    code, out, err = await run_cli("doctor", env=env)
    assert code == 0, err
    report = json.loads(out)
    assert report["ok"] is True
    assert report["database_url"] == env["MCP_MEMORY_DATABASE_URL"]
    assert report["config_file_exists"] is False
    assert report["stores"]["durable"]["path"] == str(tmp_path / "desktop.db")
    assert (tmp_path / "desktop.db").is_file()


async def test_doctor_and_export_read_a_sqlite_file_without_creating_or_upgrading_it(tmp_path: Path) -> None:
    """doctor on a file of an older schema reports it and leaves it byte for byte (an upgrade would lock out the
    release that wrote it), as does migrate --status (a downgrade is refused: a file never goes down); export of a
    path with no file says so and creates nothing."""
    old = tmp_path / "old.db"
    shutil.copyfile(Path(__file__).parent / "data" / "sqlite_schema6.db", old)
    before = old.read_bytes()
    env = server_env(tmp_path, MCP_MEMORY_DATABASE_URL=f"sqlite+aiosqlite:///{old}")
    code, out, _ = await run_cli("doctor", env=env)
    report = json.loads(out)
    assert code == 1 and report["sqlite_file"]["schema_version"] == 6
    assert "is at schema 6, older than this release's" in report["error"]
    assert old.read_bytes() == before

    code, out, _ = await run_cli("migrate", "--status", env=env)
    assert code == 0 and json.loads(out)["schema_version"] == 6 and old.read_bytes() == before
    code, out, _ = await run_cli("migrate", "--downgrade", "base", env=env)
    assert code == 1 and "never downgraded" in json.loads(out)["error"]

    missing = tmp_path / "typo" / "memroy.db"
    env = server_env(tmp_path, MCP_MEMORY_DATABASE_URL=f"sqlite+aiosqlite:///{missing}")
    code, out, err = await run_cli("export", "--project", str(uuid.uuid4()), env=env)
    assert (code, out) == (1, "") and err.startswith(f"mcp-memory: not_found: no SQLite file at {missing}")
    assert not missing.parent.exists()


async def test_doctor_reports_a_bad_configuration(tmp_path: Path) -> None:
    env = server_env(tmp_path, MCP_MEMORY_DATABASE_URL="postgresql+asyncpg://nobody@127.0.0.1:1/none")
    code, out, _ = await run_cli("doctor", env=env)
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False and report["error"]
    assert "Traceback" not in out

    env = server_env(tmp_path, MCP_MEMORY_MAX_KEYS_PER_SESSION="zero")
    code, out, _ = await run_cli("doctor", env=env)
    assert code == 1
    assert json.loads(out)["ok"] is False


async def test_serve_with_a_bad_configuration_fails_cleanly(tmp_path: Path) -> None:
    env = server_env(tmp_path, MCP_MEMORY_DATABASE_URL="mysql+aiomysql://nobody@127.0.0.1:1/none")
    code, out, err = await run_cli("serve", env=env)
    assert code == 2
    assert out == "", "stdout is the protocol channel: nothing else goes there"
    assert "configuration error" in err and "Traceback" not in err
