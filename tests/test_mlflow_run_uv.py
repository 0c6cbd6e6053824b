"""`mlflow run --env-manager uv`: MLflow builds the project's environment from
python_env.yaml with uv (a pinned dev dependency) and runs an entry point in it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

# pip may fetch the torch wheel (up to 10 min), then uv builds the environment (up to 10 min)
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]
REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _torch_wheel_folder() -> Path:
    """A folder holding the pinned torch CPU wheel, fetched by pip once (pip finds the
    local CPU build; uv on its own would take the multi-GB CUDA build from PyPI)."""
    folder = Path.home() / ".cache" / "soi-mlflow" / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(folder),
         "-c", str(REPO / "constraints.txt"), "torch==2.13.0"],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    assert any(p.name.startswith("torch-2.13.0") for p in folder.iterdir())
    return folder


def test_an_entry_point_runs_in_the_environment_uv_builds(tmp_path: Path) -> None:
    uv = subprocess.run([BIN / "uv", "--version"], capture_output=True, text=True, check=True)
    assert uv.stdout.startswith("uv 0.13.8")
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_RUN_ID", "PYTHONPATH")}
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    env |= {
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_ENV_ROOT": str(tmp_path / "envs"),  # a fresh environment, built by uv
        "UV_FIND_LINKS": str(_torch_wheel_folder()),
    }
    out = subprocess.run(
        [BIN / "mlflow", "run", str(REPO), "-e", "preview", "--env-manager", "uv",
         "--experiment-name", "uv-run", "-P", "max_examples=10", "-P", "examples=0"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "torch==2.13.0+cpu" in out.stderr  # uv built the env, with the local CPU wheel
    assert "train on books, movies; OOD: restaurants" in out.stdout
    assert len(list((tmp_path / "envs").glob("*/bin/soi-mlflow"))) == 1
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("uv-run").experiment_id])
    assert run.info.status == "FINISHED" and run.data.params["max_examples"] == "10"
