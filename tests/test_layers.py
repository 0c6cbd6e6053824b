"""The package's layers (docs/design.md, "Layers"): every import of a soi_mlflow module
points to its own layer or one below, and importing a module runs no import cycle.

Read from the source with ``ast``: imports inside functions count too (they are the same
dependency, taken later), ``if TYPE_CHECKING:`` blocks do not."""

from __future__ import annotations

import ast
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


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def _imports(path: Path, module_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("soi_mlflow"):
            names |= {f"{node.module}.{a.name}" for a in node.names}
            if node.module != "soi_mlflow":  # `from soi_mlflow import __version__`: the root
                names.add(node.module)  # always runs first; only what it names counts
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
        for target in _imports(path, module_level_only=False):
            if target in modules and LAYERS[layer_of(target)] > here:
                upward.append(f"{name} -> {target}")
    assert not upward, "imports pointing up a layer:\n" + "\n".join(sorted(upward))


def test_no_import_cycle() -> None:
    modules = _modules()
    graph = {
        name: {t for t in _imports(path, module_level_only=True) if t in modules and t != name}
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
