"""Shared test set-up: every test gets its own token cache, and no test reaches the hub."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOI_MLFLOW_CACHE", str(tmp_path_factory.getbasetemp() / "soi-cache"))
