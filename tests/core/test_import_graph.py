"""`core/` is a library in layers: its import graph, read from the source, has no cycle and no Streamlit."""
from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

from tests.paths import REPO_ROOT

CORE = REPO_ROOT / "core"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def core_imports(path: Path, modules: set[str]) -> set[str]:
    """Every core module `path` imports, at the top or inside a function (a local import hides a cycle, not removes it)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in modules)
    return found


def import_graph() -> dict[str, set[str]]:
    """{module: the core modules it imports}; a package name counts only where it is not the importer's own package."""
    paths = sorted(CORE.rglob("*.py"))
    modules = {module_name(path) for path in paths}
    packages = {module_name(path) for path in paths if path.name == "__init__.py"}
    graph = {}
    for path in paths:
        source = module_name(path)
        # `from core.encoders import backbones` also names the package core.encoders, whose __init__ imports
        # nothing: only the module is an edge.
        graph[source] = {target for target in core_imports(path, modules)
                         if target != source and target not in packages}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as [a, b, ..., a], or [] when the graph is acyclic."""
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as error:
        return list(error.args[1])
    return []


def test_core_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert not cycle, "import cycle in core/: " + " -> ".join(cycle)


def test_the_check_sees_a_cycle_when_one_exists():
    graph = import_graph()
    assert graph["core.lab.train"], "the lab imports the stages below it"
    below = next(iter(graph["core.lab.train"]))
    graph[below] = graph[below] | {"core.lab.train"}  # the kind of cycle issue 16 removed, put back by hand
    assert find_cycle(graph)


@pytest.mark.parametrize("path", sorted(CORE.rglob("*.py")), ids=lambda path: module_name(path))
def test_core_never_imports_streamlit(path: Path):
    tree = ast.parse(path.read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert "streamlit" not in imported


def test_lower_stages_never_import_higher_ones():
    """data < encoders < features < analyses < figures < studies; the lab registers itself with the encoders, never the
    reverse."""
    order = ["core.paths", "core.data", "core.encoders", "core.features", "core.analyses", "core.figures",
             "core.studies"]
    rank = {prefix: index for index, prefix in enumerate(order)}

    def stage(module: str) -> int | None:
        return next((rank[prefix] for prefix in order if module == prefix or module.startswith(prefix + ".")), None)

    edges = [(source, target) for source, targets in import_graph().items() for target in targets]
    upward = [(source, target) for source, target in edges
              if stage(source) is not None and stage(target) is not None and stage(target) > stage(source)]
    upward += [(source, target) for source, target in edges
               if source.startswith(("core.encoders", "core.data", "core.features")) and target.startswith("core.lab")]
    assert not upward, f"lower stage imports a higher one: {upward}"
