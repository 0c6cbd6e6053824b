"""Helpers for tests that read runs back (the analysis package has the real readers)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.artifacts import download_artifacts

from soi_mlflow.data.mixture import MixtureSpec
from soi_mlflow.tracking.trace_format import read_metadata, read_trace
from soi_mlflow.training import TrainConfig


def trace_files(uri: str, run_id: str, split: str) -> list[str]:
    client = MlflowClient(uri)
    return sorted(a.path for a in client.list_artifacts(run_id, f"traces/{split}"))


def load_trace(uri: str, run_id: str, path: str) -> tuple[pd.DataFrame, dict]:
    local = download_artifacts(
        run_id=run_id, artifact_path=path, tracking_uri=uri, dst_path=tempfile.mkdtemp()
    )
    return read_trace(local), read_metadata(local)


def load_examples(uri: str, run_id: str, split: str) -> pd.DataFrame:
    local = download_artifacts(
        run_id=run_id,
        artifact_path=f"examples/{split}.parquet",
        tracking_uri=uri,
        dst_path=tempfile.mkdtemp(),
    )
    return pd.read_parquet(Path(local))


@contextmanager
def scratch_store(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[str]:
    """A module-wide SQLite store in its own folder (artifacts land there too)."""
    folder = tmp_path_factory.mktemp(name)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        mp.delenv("MLFLOW_RUN_ID", raising=False)
        yield f"sqlite:///{folder}/mlflow.db"


def small_config(
    uri: str,
    members: tuple[str, ...] = ("books",),
    ood: tuple[str, ...] = (),
    axis: str = "source",
    max_examples: int = 60,
    eval_max_examples: int = 50,
    **settings,
) -> TrainConfig:
    """A built-in-suite training config small enough for a test (2 epochs, batch 16)."""
    spec = MixtureSpec(
        "builtin",
        axis,
        tuple(members),
        ood=tuple(ood),
        max_examples=max_examples,
        eval_max_examples=eval_max_examples,
    )
    return TrainConfig(
        spec, tracking_uri=uri, **{"epochs": 2, "batch_size": 16, "progress": False, **settings}
    )


def cli_env(uri: str) -> dict[str, str]:
    """The environment of a user with the venv activated and ``uri`` as tracking store."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_RUN_ID"}
    env["MLFLOW_TRACKING_URI"] = uri
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_cli(args: list[str], uri: str, cwd: Path, timeout: int = 600) -> str:
    """Run ``soi-mlflow ARGS`` in a child process; fail with its stderr; return stdout."""
    out = subprocess.run(
        [sys.executable, "-m", "soi_mlflow.cli", *args],
        capture_output=True,
        text=True,
        env=cli_env(uri),
        cwd=cwd,
        timeout=timeout,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout
