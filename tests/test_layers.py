"""The package's layers (docs/design.md, "Layers"): every import of a soi_mlflow module
points to its own layer or one below, and no module depends on itself through others
(no import cycle).

Read from the source with ``ast``: imports inside functions count too, for the layers and
for the cycles (they are the same dependency, taken later; a function-level import does
not break a cycle, it hides it); ``if TYPE_CHECKING:`` blocks do not."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "soi_mlflow"

# top-down; a module may import its own layer and the layers below it
LAYERS = {
    "facade": 7,  # soi_mlflow/__init__.py: the public names, re-exported lazily
    "cli": 6,
    "server": 6,
    "studies": 5,
    "training": 4,
    "callbacks": 3,
    "lightning": 3,  # the adapters for users' training code
    "transformers": 3,
    "analysis": 2,
    "model": 2,
    "tracking": 1,
    "data": 1,
    "common": 0,
    "errors": 0,
}


def layer_of(module: str) -> str:
    """The layer a module belongs to: its sub-package, or its own name at the root."""
    parts = module.split(".")
    return "facade" if len(parts) == 1 else parts[1]


@functools.cache
def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def _import_nodes(nodes: list[ast.stmt]) -> list[ast.stmt]:
    """The import statements among ``nodes`` and inside them (in functions and classes
    too), leaving out those under ``if TYPE_CHECKING:``."""
    found: list[ast.stmt] = []
    for node in nodes:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            found += _import_nodes(node.orelse)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        else:
            inner = [c for c in ast.iter_child_nodes(node) if isinstance(c, ast.stmt)]
            found += _import_nodes(inner)
    return found


def _imports(path: Path) -> set[str]:
    """Every soi_mlflow module (or name in one) that ``path`` imports, anywhere in it.

    ``from package import name`` depends on the package's ``__init__`` only when a name is
    no module of it (``from soi_mlflow.analysis import figures`` is an import of
    ``soi_mlflow.analysis.figures``); a package's ``__init__`` runs before any of its
    modules, so only what is imported from it counts."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    modules = _modules()
    names: set[str] = set()
    for node in _import_nodes(tree.body):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("soi_mlflow"):
            named = {f"{node.module}.{a.name}" for a in node.names}
            names |= named
            if node.module != "soi_mlflow" and not named <= set(modules):
                names.add(node.module)
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.startswith("soi_mlflow")}
    return names


def test_every_module_has_a_layer() -> None:
    unknown = {m for m in _modules() if layer_of(m) not in LAYERS}
    assert not unknown, f"modules outside the layers of docs/design.md: {sorted(unknown)}"


def test_imports_point_down() -> None:
    modules = _modules()
    upward = []
    for name, path in modules.items():
        here = LAYERS[layer_of(name)]
        for target in _imports(path):
            if target in modules and LAYERS[layer_of(target)] > here:
                upward.append(f"{name} -> {target}")
    assert not upward, "imports pointing up a layer:\n" + "\n".join(sorted(upward))


def test_no_import_cycle() -> None:
    modules = _modules()
    graph = {
        name: {t for t in _imports(path) if t in modules and t != name}
        for name, path in modules.items()
    }
    cycles, state = [], dict.fromkeys(graph, 0)  # 0 new, 1 on the path, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state[nxt] == 1:
                cycles.append(" -> ".join([*path[path.index(nxt):], nxt]))
            elif state[nxt] == 0:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if state[node] == 0:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_reader_counts_function_level_imports_but_not_type_checking(tmp_path) -> None:
    source = tmp_path / "sample.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from soi_mlflow.studies.views import ViewsSettings\n"
        "def later():\n"
        "    from soi_mlflow.common.executor_ray import RayExecutor\n"
        "class Holder:\n"
        "    def method(self):\n"
        "        import soi_mlflow.tracking.tags\n"
        "from soi_mlflow.analysis import figures\n",
        encoding="utf-8",
    )
    found = _imports(source)
    assert {"soi_mlflow.common.executor_ray", "soi_mlflow.tracking.tags"} <= found
    assert "soi_mlflow.analysis.figures" in found and "soi_mlflow.analysis" not in found
    assert not any(name.startswith("soi_mlflow.studies") for name in found)
