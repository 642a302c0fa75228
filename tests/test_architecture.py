"""Structure rules: no import circle in fedsim/, between modules or between packages;
sweep folder names leave out only settings that do not change records."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

from fedsim.config_schema import NOT_IDENTITY

PACKAGE = Path(__file__).resolve().parent.parent / "fedsim"
CONF = PACKAGE.parent / "conf"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """fedsim module -> fedsim modules it imports (module level or inside functions)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # ``from pkg import submodule`` depends on the submodule; ``from mod import name`` on mod
                subs = [f"{node.module}.{alias.name}" for alias in node.names]
                targets = [t for t in subs if t in modules] or [node.module]
            for target in targets:
                if target in modules and target != name:
                    graph[name].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def package_of(module: str) -> str:
    """``fedsim.server.loop`` -> ``fedsim.server``; a top-level module (``fedsim.hooks``) is its own unit."""
    return ".".join(module.split(".")[:2])


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The module graph with each subpackage collapsed into one node (imports within one dropped)."""
    packages: dict[str, set[str]] = {package_of(m): set() for m in graph}
    for module, targets in graph.items():
        packages[package_of(module)].update(package_of(t) for t in targets if package_of(t) != package_of(module))
    return packages


def test_no_import_circle_in_fedsim():
    assert find_cycle(import_graph()) is None


def test_no_import_circle_between_fedsim_packages():
    graph = package_graph(import_graph())
    assert "fedsim.server" in graph and "fedsim.compare" in graph
    assert find_cycle(graph) is None


def test_package_graph_sees_a_circle_through_two_packages():
    graph = {"fedsim.hooks": {"fedsim.server.strategy"}, "fedsim.server.loop": {"fedsim.hooks"},
             "fedsim.server.strategy": set()}
    assert find_cycle(package_graph(graph)) == ["fedsim.hooks", "fedsim.server", "fedsim.hooks"]


def test_cycle_finder_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_sweep_folder_names_leave_out_only_settings_that_do_not_change_records():
    config = yaml.safe_load((CONF / "config.yaml").read_text())
    excluded = config["hydra"]["job"]["config"]["override_dirname"]["exclude_keys"]
    assert excluded and set(excluded) <= set(NOT_IDENTITY)
