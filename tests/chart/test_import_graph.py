"""The modules of pallet_dev.chart import each other without a cycle.

Every import statement counts, also one inside a function: a sibling imported lazily to
dodge a cycle is still a cycle, so it must be a module-level import in a graph without one.
The one lazy import allowed is of ``loader`` (it brings pydantic and the model): the deploy
side (``inputs``) needs it only while ``up`` validates values, not for ``status``.
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pallet_dev.chart

PACKAGE = "pallet_dev.chart"
CHART_SRC = Path(pallet_dev.chart.__file__).parent
# the pydantic entry point: imported where values are validated, kept off `status`
LAZY_ALLOWED = {"loader"}


def sibling_imports(path: Path, modules: set[str]) -> list[tuple[str, bool]]:
    """The chart modules ``path`` imports, each with whether it is at module level."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top_level = {id(node) for node in tree.body}
    found: list[tuple[str, bool]] = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            # `from . import x` and `from .x import y` are relative to the package
            parts = (PACKAGE, node.module) if node.level else (node.module,)
            base = ".".join(part for part in parts if part)
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        for name in names:
            if name.startswith(PACKAGE + ".") and name.split(".")[2] in modules:
                found.append((name.split(".")[2], id(node) in top_level))
    return found


def import_graph(package_dir: Path) -> dict[str, dict[str, bool]]:
    """module → {imported chart module: imported at module level}."""
    paths = {path.stem: path for path in package_dir.glob("*.py") if path.stem != "__init__"}
    graph: dict[str, dict[str, bool]] = {}
    for module, path in paths.items():
        edges: dict[str, bool] = {}
        for target, at_top in sibling_imports(path, set(paths)):
            if target != module:
                edges[target] = edges.get(target, True) and at_top
        graph[module] = edges
    return graph


def test_the_graph_sees_every_module() -> None:
    graph = import_graph(CHART_SRC)
    assert {"constants", "model", "schema", "loader"} <= set(graph)
    assert "model" in graph["schema"] and "schema" in graph["loader"]


def test_the_chart_modules_import_each_other_without_a_cycle() -> None:
    graph = import_graph(CHART_SRC)
    try:
        order = list(
            TopologicalSorter({name: set(edges) for name, edges in graph.items()}).static_order()
        )
    except CycleError as exc:
        raise AssertionError(f"import cycle in {PACKAGE}: {' -> '.join(exc.args[1])}") from None
    assert order.index("model") < order.index("schema") < order.index("loader")


def test_no_chart_module_imports_a_sibling_inside_a_function() -> None:
    lazy = sorted(
        f"{module} imports {target} inside a function"
        for module, edges in import_graph(CHART_SRC).items()
        for target, at_top in edges.items()
        if not at_top and target not in LAZY_ALLOWED
    )
    assert lazy == []
