"""The package's layers (docs/design.md, "Layers"): every import of a soi_mlflow module
points to its own layer or one below, and no module depends on itself through others
(no import cycle).

Read from the source with ``ast``: imports inside functions count too, for the layers and
for the cycles (they are the same dependency, taken later; a function-level import does
not break a cycle, it hides it); ``if TYPE_CHECKING:`` blocks do not."""

from __future__ import annotations

import ast
import functools
import re
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
                cycles.append(" -> ".join([*path[path.index(nxt) :], nxt]))
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


# -- deferred imports (CONTRIBUTING.md, "Style") -------------------------------------------
# An import of the package's own modules sits inside a function only when importing it at
# the top would load a heavy library (below) into a light path, or would close an import
# circle, or when a comment on it says ``deferred (not heavy): <why>``.

HEAVY = frozenset({
    "torch", "lightning", "pytorch_lightning", "torchmetrics", "transformers", "datasets",
    "ray", "duckdb", "matplotlib", "scipy", "sklearn", "cleanlab", "peft", "accelerate",
})  # fmt: skip
NOT_HEAVY_MARK = "deferred (not heavy):"
_LAZY_REF = re.compile(r"^(soi_mlflow(?:\.\w+)*):(\w+)$")


def _split(path: Path) -> tuple[list[ast.stmt], list[ast.stmt]]:
    """The import statements of ``path`` run when it is imported (at module level, in class
    bodies, in ``try``/``if``), and those inside functions; ``TYPE_CHECKING`` left out."""
    top: list[ast.stmt] = []
    deferred: list[ast.stmt] = []

    def walk(nodes: list[ast.stmt], in_function: bool) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                walk(node.orelse, in_function)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                (deferred if in_function else top).append(node)
            else:
                inner = [c for c in ast.iter_child_nodes(node) if isinstance(c, ast.stmt)]
                function = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                walk(inner, in_function or function)

    walk(ast.parse(path.read_text(encoding="utf-8")).body, False)
    return top, deferred


@functools.cache
def _lazy_exports(package: str) -> dict[str, str]:
    """The names a package's ``__init__`` hands out through ``__getattr__``, by the module
    that defines them: an ``_EXPORTS = {name: submodule}`` table or an import inside
    ``__getattr__``."""
    path = _modules().get(package)
    if path is None or path.name != "__init__.py":
        return {}
    found: dict[str, str] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "_EXPORTS":
            table = ast.literal_eval(node.value)
            found |= {name: f"{package}.{sub}" for name, sub in table.items()}
        elif isinstance(node, ast.FunctionDef) and node.name == "__getattr__":
            for sub in ast.walk(node):
                if isinstance(sub, ast.ImportFrom) and (sub.module or "").startswith("soi_"):
                    found |= {a.name: sub.module for a in sub.names}
    return found


def _loads(node: ast.stmt) -> tuple[set[str], set[str]]:
    """The package's modules an import statement names (a lazily exported name counts as
    its own module's) and the third-party modules it imports, by their dotted names."""
    modules = _modules()
    own: set[str] = set()
    third: set[str] = set()
    if isinstance(node, ast.Import):
        for alias in node.names:
            (own if alias.name.split(".")[0] == "soi_mlflow" else third).add(alias.name)
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        if node.module.split(".")[0] != "soi_mlflow":
            third.add(node.module)
        else:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                lazy = _lazy_exports(node.module).get(alias.name)
                own.add(sub if sub in modules else lazy or node.module)
    return own & set(modules), third


def _parents(module: str) -> set[str]:
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


@functools.cache
def _module_level() -> dict[str, tuple[frozenset[str], frozenset[str]]]:
    """For each module, the package's modules and the third-party modules its module-level
    imports name."""
    graph = {}
    for name, path in _modules().items():
        own: set[str] = set()
        third: set[str] = set()
        for node in _split(path)[0]:
            named, others = _loads(node)
            own |= named
            third |= others
        graph[name] = (frozenset(own - {name}), frozenset(third))
    return graph


@functools.cache
def _reach(name: str, parents: bool = True) -> frozenset[str]:
    """Every module of the package that importing ``name`` runs, ``name`` included. With
    ``parents=False``, only those it depends on through imports: a package's ``__init__``
    that is still running when its submodule is imported is no circle."""
    graph, seen, todo = _module_level(), set(), [name]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += graph[module][0]
            todo += _parents(module) & set(graph) if parents else ()
    return frozenset(seen)


def heavy_libraries(name: str) -> set[str]:
    """The heavy libraries importing module ``name`` loads, through any of the package's
    modules it imports at module level; a heavy name anywhere in a dotted import counts
    (``safetensors.torch`` loads torch)."""
    graph = _module_level()
    return {
        part
        for module in _reach(name)
        for lib in graph[module][1]
        for part in lib.split(".")
        if part in HEAVY
    }


def _comment_of(lines: list[str], node: ast.stmt) -> str:
    """The comments on an import's lines and on a comment line just above it."""
    above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
    span = lines[node.lineno - 1 : node.end_lineno]
    comments = [line.split("#", 1)[1] for line in span if "#" in line]
    return " ".join([above[1:]] * above.startswith("#") + comments)


def _lazy_references(path: Path) -> list[tuple[int, str]]:
    """``"soi_mlflow.module:Name"`` strings in ``path``: imports made later, by name."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (node.lineno, _lazy_exports(match.group(1)).get(match.group(2), match.group(1)))
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        for match in [_LAZY_REF.match(node.value)]
        if match
    ]


def deferred_import_offenders() -> list[str]:
    """``file:line`` of each deferred import of the package's own modules (and each
    ``"module:Name"`` reference) that no heavy library, no circle and no marked reason
    explains, and of each deferral without a ``# deferred`` comment."""
    offenders = []
    for name, path in sorted(_modules().items()):
        lines = path.read_text(encoding="utf-8").splitlines()
        here = heavy_libraries(name)
        where = path.relative_to(PACKAGE.parent)
        deferred = [(node.lineno, _loads(node)[0], node) for node in _split(path)[1]]
        deferred += [(line, {module}, None) for line, module in _lazy_references(path)]
        for line, loaded, node in deferred:
            targets = loaded - {name}
            if not targets:
                continue
            brings = set().union(*(heavy_libraries(t) for t in targets)) - here
            circle = any(name in _reach(t, parents=False) for t in targets)
            comment = _comment_of(lines, node) if node else lines[line - 1].partition("#")[2]
            if not (brings or circle or NOT_HEAVY_MARK in comment):
                offenders.append(
                    f"{where}:{line}: {', '.join(sorted(targets))} loads no "
                    f"heavy library that {name} does not, and closes no circle"
                )
            elif node is not None and "deferred" not in comment:
                offenders.append(
                    f"{where}:{line}: a deferred import without a '# deferred: why' comment"
                )
    return offenders


def test_own_modules_are_imported_at_the_top_unless_heavy_or_marked() -> None:
    offenders = deferred_import_offenders()
    assert not offenders, (
        "import these at the top of the module, or say why not (CONTRIBUTING.md, Style):\n"
        + "\n".join(offenders)
    )


def test_the_heaviness_reader_follows_lazy_exports_and_module_level_imports() -> None:
    assert "datasets" in heavy_libraries("soi_mlflow.data.mixture")
    # a lazily exported name is its own module's: TrainConfig brings the data layer
    assert "datasets" in heavy_libraries("soi_mlflow.studies.fanout")
    assert "lightning" in heavy_libraries("soi_mlflow.lightning")
    assert "torch" in heavy_libraries("soi_mlflow.model.checkpoint")  # safetensors.torch
    assert not heavy_libraries("soi_mlflow.cli.main")
    assert not heavy_libraries("soi_mlflow")
    assert not heavy_libraries("soi_mlflow.analysis")
