"""Shared test set-up: every test gets its own token cache, and no test reaches the hub."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOI_MLFLOW_CACHE", str(tmp_path_factory.getbasetemp() / "soi-cache"))


@pytest.fixture
def store(tmp_path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh SQLite tracking store; artifacts land under the test's own folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return f"sqlite:///{tmp_path}/mlflow.db"


@pytest.fixture(scope="module")
def module_store(tmp_path_factory: pytest.TempPathFactory):
    """One SQLite tracking store for a whole test module (creating one costs ~3 s)."""
    folder = tmp_path_factory.mktemp("store")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        mp.delenv("MLFLOW_RUN_ID", raising=False)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield f"sqlite:///{folder}/mlflow.db"


def pytest_terminal_summary(terminalreporter) -> None:
    """The fault-injection suite's one-line summary (docs/reliability.md quotes it)."""
    import sys

    faults = sys.modules.get("faulthelp")
    if faults is not None and faults.SUMMARY["faults"]:
        s = faults.SUMMARY
        terminalreporter.write_line(
            f"fault injection: {s['faults']} faults injected, {s['recovered']} runs "
            f"recovered, {s['rows']} trace rows compared, rows lost: {s['lost']}"
        )
