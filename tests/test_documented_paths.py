"""Every import path the documentation shows still works, and so does every entry point
the package declares: a re-layout must not break a user's ``from soi_mlflow... import``.
And every repository path (``soi_mlflow/...``, ``tests/...``, ``tracking/run.py`` in a
module list, the package tree in docs/design.md), relative link and ``soi_mlflow.x.y``
name that README.md, CONTRIBUTING.md and docs/*.md mention is there."""

from __future__ import annotations

import ast
import importlib
import re
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = [
    REPO / "README.md",
    REPO / "CONTRIBUTING.md",
    *sorted((REPO / "docs").glob("*.md")),
    *sorted((REPO / "examples").glob("*.py")),
    *sorted((REPO / "notebooks").glob("*.ipynb")),
]
FROM_IMPORT = re.compile(r"from (soi_mlflow[\w.]*) import \(?([\w, ]+)\)?")


def documented_imports() -> set[tuple[str, str]]:
    """(module, name) of every ``from soi_mlflow... import name`` in the documents."""
    found = set()
    for path in DOCUMENTS:
        for module, names in FROM_IMPORT.findall(path.read_text(encoding="utf-8")):
            for part in names.split(","):
                name = part.strip().split(" as ")[0].strip()
                if name.isidentifier():
                    found.add((module, name))
    return found


def test_the_documents_show_imports() -> None:
    found = documented_imports()
    assert len(found) > 20
    assert ("soi_mlflow.analysis", "compare_runs") in found


@pytest.mark.parametrize("module, name", sorted(documented_imports()))
def test_each_documented_import_resolves(module: str, name: str) -> None:
    for _ in range(2):  # a lazy re-export must give the same object on every access
        loaded = importlib.import_module(module)
        value = getattr(loaded, name, None)
        if value is None:  # `from soi_mlflow import lightning`: a submodule
            value = importlib.import_module(f"{module}.{name}")
        assert value is not None


def test_every_declared_entry_point_loads() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    points = [
        EntryPoint(name, target, group)
        for group, table in {
            "console_scripts": project.get("scripts", {}),
            **project.get("entry-points", {}),
        }.items()
        for name, target in table.items()
    ]
    assert any(p.group == "console_scripts" and p.name == "soi-mlflow" for p in points)
    for point in points:
        assert point.load() is not None, f"{point.group}: {point.name} = {point.value}"


# -- every repository path and soi_mlflow name the prose mentions exists ----------------
PROSE = [REPO / "README.md", REPO / "CONTRIBUTING.md", *sorted((REPO / "docs").glob("*.md"))]
PACKAGE = REPO / "soi_mlflow"
SUBPACKAGES = "|".join(sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py")))
TOP = r"(?:soi_mlflow|tests|docs|bench|examples|experiments|notebooks|\.ci)"
EDGE = r"(?<![\w./<>-])"  # a path starts here, not inside a longer word, path or <name>
REPO_PATH = re.compile(rf"{EDGE}{TOP}/[\w./*-]*")  # soi_mlflow/tracking/run.py, docs/, ...
MODULE_PATH = re.compile(rf"{EDGE}(?:{SUBPACKAGES})/[\w/]*\w\.py\b")  # tracking/run.py
MODULE_ATTR = re.compile(rf"`((?:{SUBPACKAGES})/[\w/]*\w)\.([A-Za-z_]\w*)`")  # studies/parent.x
NAME_IN_MODULE = re.compile(  # `metric_safe`, `tracking/run.py`: the module defines the name
    rf"`([A-Za-z_]\w*)`(?:, | in | \()`((?:soi_mlflow/)?(?:{SUBPACKAGES})/[\w/]+\.py)`"
)
DOTTED = re.compile(rf"{EDGE}soi_mlflow(?:\.\w+)+")
LINK = re.compile(r"\]\(([^)#\s:]+)(?:#[^)]*)?\)")  # [text](relative/path#anchor)
# in the tree: `a.py`, `folder/` or `folder/*.yaml`, standing alone (not `[k/n]`, `C/SIGTERM`)
TREE_ENTRY = re.compile(r"(?<![^\s(])(\w+\.py|\w+/(?:\*\.\w+)?)(?=[\s),]|$)")
FILE_TYPES = {"csv", "db", "html", "ipynb", "json", "md", "parquet", "png", "py", "sh", "txt"}


def _exists(path: Path) -> bool:
    if "*" in path.name:
        return any(path.parent.glob(path.name))
    return path.exists()


def _checked(token: str) -> bool:
    """A token that names a path for sure: a folder (``x/``), a file (``x/y.py``) or
    anything in the package; ``400 examples/member`` in printed output is prose."""
    last = token.rsplit("/", 1)[-1]
    return token.endswith("/") or "." in last or token.startswith("soi_mlflow/")


def _defined_names(module: Path) -> set[str]:
    """Top-level functions, classes and assignments of a module (not what it imports)."""
    names: set[str] = set()
    for node in ast.parse(module.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def _resolves(dotted: str) -> bool:
    """An importable module, or an attribute (chain) of the longest one that imports."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            value = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(value, attr):
                return False
            value = getattr(value, attr)
        return True
    return False


def _tree_problems(text: str) -> list[str]:
    """The package tree in a fenced block (a line ``soi_mlflow/``, then ``  folder/  a.py
    (...), b.py`` and continuation lines): every file and folder it lists is there."""
    problems = []
    for block in re.findall(r"```[^\n]*\n(.*?)```", text, re.S):
        if "\nsoi_mlflow/\n" not in f"\n{block}":
            continue
        home = PACKAGE
        for line in block.splitlines():
            head = re.match(r"^  ([\w.]+/?)(?:\s|$)", line)
            if head:
                home = PACKAGE / head.group(1)
                if not home.exists():
                    problems.append(f"tree: soi_mlflow/{head.group(1)}")
                rest = line[head.end() :]
            elif line.startswith("   "):
                rest = line
            else:
                continue
            if not home.is_dir():
                continue  # a root module's description
            for name in TREE_ENTRY.findall(rest):  # a module, a folder or a glob
                if not any(home.rglob(name.rstrip("/"))):
                    problems.append(f"tree: {name} under {home.relative_to(REPO)}")
    return problems


def documented_problems(path: Path) -> list[str]:
    """What ``path`` names that the repository does not have."""
    text = path.read_text(encoding="utf-8")
    problems = []
    for token in set(REPO_PATH.findall(text)):
        token = token.rstrip(".")
        if _checked(token) and not _exists(REPO / token):
            problems.append(token)
    for token in set(MODULE_PATH.findall(text)):
        if not (PACKAGE / token).is_file():
            problems.append(token)
    for module, attr in set(MODULE_ATTR.findall(text)):
        file = PACKAGE / f"{module}.py"
        if attr not in FILE_TYPES and not (file.is_file() and attr in _defined_names(file)):
            problems.append(f"{module}.{attr}")
    for name, module in set(NAME_IN_MODULE.findall(text)):
        file = PACKAGE / module.removeprefix("soi_mlflow/")
        if not file.is_file() or name not in _defined_names(file):
            problems.append(f"{name} (said to be in {module})")
    for token in set(DOTTED.findall(text)):
        if not _resolves(token):
            problems.append(token)
    for target in set(LINK.findall(text)):
        if not target.startswith(("http", "mailto")) and not (path.parent / target).exists():
            problems.append(f"link {target}")
    return sorted(problems) + _tree_problems(text)


def test_the_path_check_catches_drift() -> None:
    """Known drift is caught; the same text, fixed, is not."""
    wrong = PROSE[0].parent / "drift.md"
    cases = {
        "known answers (`tests/test_soi.py`, `analysis/reference.py`)": ["analysis/reference.py"],
        "names (`metric_safe`, `tracking/recorder.py`)": [
            "metric_safe (said to be in tracking/recorder.py)"
        ],
        "opened with `studies/parent.study_parents`": ["studies/parent.study_parents"],
        "`soi_mlflow.tracking.recorder.NoSuchName` and soi_mlflow.nothing_here": [
            "soi_mlflow.nothing_here",
            "soi_mlflow.tracking.recorder.NoSuchName",
        ],
        "see [the page](nowhere.md) and `bench/gone.py`": ["bench/gone.py", "link nowhere.md"],
        "```\nsoi_mlflow/\n  tracking/   recorder.py (x), gone.py (y)\n```": [
            "tree: gone.py under soi_mlflow/tracking"
        ],
    }
    fine = (
        "`tests/reference.py`, (`metric_safe`, `tracking/run.py`), `studies/parent.study_parent`,"
        " `soi_mlflow.tracking.recorder.TraceRecorder`, 400 examples/member, `data/`,"
        " `examples/<split>.parquet`, [design](docs/design.md#layers), `docs/*.md`"
    )
    try:
        for text, expected in cases.items():
            wrong.write_text(text, encoding="utf-8")
            assert documented_problems(wrong) == expected, text
        wrong.write_text(fine, encoding="utf-8")
        assert documented_problems(wrong) == []
    finally:
        wrong.unlink(missing_ok=True)


@pytest.mark.parametrize("path", PROSE, ids=lambda p: p.name)
def test_every_path_and_name_the_prose_mentions_exists(path: Path) -> None:
    assert documented_problems(path) == [], f"{path.name} names what is not there"
