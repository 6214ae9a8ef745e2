import pytest

from mcp_memory.models import Scope
from mcp_memory.services.runtime import MemoryRuntime

pytestmark = pytest.mark.anyio


async def test_spawn_set_pause_resume(runtime: MemoryRuntime, scope: Scope) -> None:
    lc = runtime.lifecycle
    r = await lc.spawn(scope.project_id, scope.agent_instance_id, scope.session_id, initial_state={"a": 1})
    assert r.data["initial_items"] == 1
    await runtime.working.set(scope, "b", [1, 2])
    p = await lc.pause(scope.project_id, scope.agent_instance_id, scope.session_id)
    assert p.data["items_saved"] == 2
    await runtime.working.set(scope, "c", "x")
    r = await lc.resume(scope.project_id, scope.agent_instance_id, scope.session_id)
    assert r.data["items_restored"] == 2
    assert await runtime.working.list_keys(scope) == ["a", "b"]
