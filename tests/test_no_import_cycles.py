"""No module of mcp_memory imports another that (directly or not) imports it back.

Read statically: every ``import`` and ``from ... import`` node of every module (at module level, inside functions
and under ``TYPE_CHECKING`` alike), relative imports resolved, ``from package import name`` counted as an import of
the submodule when ``name`` is one. A cycle fails the test with the modules that form it, in order.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import mcp_memory

PACKAGE = "mcp_memory"
ROOT = Path(mcp_memory.__file__).resolve().parent


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__``)."""
    modules: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _base(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a ``from`` import names (its relative dots resolved against ``module``)."""
    if node.level == 0:
        return node.module or ""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join([*parts, *([node.module] if node.module else [])])


def imports_of(module: str, path: Path, known: Mapping[str, Path]) -> set[str]:
    """The package's modules that ``module`` imports, anywhere in its body."""
    found: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _base(module, is_package, node)
            # ``from pkg import sub`` imports the submodule ``pkg.sub``; ``from mod import name`` imports ``mod``.
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for name in names:
            # ``import a.b.c`` of a name that is not a module itself (an attribute): its longest module prefix.
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    known = module_files(root)
    return {module: imports_of(module, path, known) for module, path in known.items()}


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Each strongly connected set of more than one module, as one cycle through it (Tarjan, then a path)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_one_cycle(graph, set(component), component[0]) for component in components]


def _one_cycle(graph: Mapping[str, set[str]], members: set[str], start: str) -> list[str]:
    """A path from ``start`` back to itself within one strongly connected component (breadth first: shortest)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for nxt in sorted(graph[node] & members):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start] if node != start else [start, start]
                if nxt not in previous:
                    previous[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"{start} is in no cycle")  # unreachable for a component of two or more


def describe(found: list[list[str]]) -> Iterator[str]:
    for cycle in found:
        yield " -> ".join(cycle)


def test_no_module_of_mcp_memory_imports_itself_back() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles in mcp_memory:\n" + "\n".join(describe(found))


def test_the_walk_sees_function_level_and_relative_imports(tmp_path: Path) -> None:
    """The checker itself: a cycle made only by a function-level relative import is found and named."""
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "a.py").write_text("from mcp_memory.sub import b\n")
    (pkg / "sub" / "b.py").write_text("def late():\n    from . import a\n    from ..sub.c import thing\n")
    (pkg / "sub" / "c.py").write_text("thing = 1\n")
    graph = import_graph(pkg)
    assert graph["mcp_memory.sub.b"] == {"mcp_memory.sub.a", "mcp_memory.sub.c"}
    assert cycles(graph) == [["mcp_memory.sub.a", "mcp_memory.sub.b", "mcp_memory.sub.a"]]
