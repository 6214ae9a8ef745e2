"""The official MCP conformance suite (npm ``@modelcontextprotocol/conformance``) against ``mcp-memory serve
--transport http``: the server scenarios this server implements pass.

Runs where Node and npm are at hand (``scripts/mcp-conformance`` installs the suite once under
``~/.cache/mcp-conformance`` from the npm registry); skipped, saying so, where Node is missing.
Left out on purpose: ``logging-set-level`` (the logging capability is deprecated and not offered), the scenarios that
need the suite's own ``test://`` resources, tools or prompts (``resources-read-*``, ``resources-templates-read``,
``tools-call-*``, ``prompts-get-*``), and ``json-schema-2020-12`` / ``server-sse-polling`` (fixtures of their own).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.http_helpers import ServerProcess, server_env

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "mcp-conformance"
SCENARIOS = (
    "server-initialize",
    "ping",
    "tools-list",
    "resources-list",
    "resources-subscribe",
    "resources-unsubscribe",
    "prompts-list",
    "completion-complete",
    "server-sse-multiple-streams",
    "dns-rebinding-protection",
)

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None, reason="Node.js and npm are needed for the suite"
)


def test_the_official_conformance_scenarios_pass_over_streamable_http(tmp_path: Path) -> None:
    with ServerProcess(server_env(tmp_path / "m.db")) as server:
        done = subprocess.run(
            [str(SCRIPT), server.url + "/mcp", *SCENARIOS],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    passed = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("PASS ")]
    assert passed == list(SCENARIOS), done.stdout + done.stderr
    assert done.returncode == 0, done.stdout + done.stderr
