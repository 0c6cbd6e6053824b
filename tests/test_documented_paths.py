"""Every import path the documentation shows still works, and so does every entry point
the package declares: a re-layout must not break a user's ``from soi_mlflow... import``."""

from __future__ import annotations

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
