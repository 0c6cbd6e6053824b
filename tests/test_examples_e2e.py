"""The three example scripts run as a user runs them, each leaving one traced MLflow run
that ``soi-mlflow analyze --run-id`` analyses. They use the real pretrained MiniLM, on
fewer examples than their default (``SOI_EXAMPLES_N``) to keep the suite fast."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient
from tracehelp import cli_env, scratch_store

from soi_mlflow.analysis.report import analyze_run

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = ("plain_loop", "hf_trainer", "lightning_module")
N = 32  # training examples; validation gets 16


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with scratch_store(tmp_path_factory, "examples") as uri:
        yield uri


@pytest.mark.e2e
@pytest.mark.parametrize("script", SCRIPTS)
def test_example_leaves_one_run_with_a_trace_per_split_and_epoch(store, script) -> None:
    client = MlflowClient(store)
    env = cli_env(store) | {"SOI_EXAMPLES_N": str(N)}
    before = {r.info.run_id for r in _all_runs(client)}
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{script}.py")],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(store.removeprefix("sqlite:///")).parent,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    new = [r for r in _all_runs(client) if r.info.run_id not in before]
    assert len(new) == 1, [r.info.run_name for r in new]
    run_id = new[0].info.run_id
    assert re.search(rf"run id: {run_id}", out.stdout)
    for split in ("train", "validation"):
        files = [a.path for a in client.list_artifacts(run_id, f"traces/{split}")]
        assert [f.rsplit("/", 1)[1] for f in files] == ["epoch=000.parquet", "epoch=001.parquet"]
    tables = analyze_run(run_id, ["train", "validation"], tracking_uri=store)
    assert len(tables["train"]) == N and len(tables["validation"]) == N // 2
    figures = {a.path for a in client.list_artifacts(run_id, "figures")}
    assert "figures/datamap_train.png" in figures


def _all_runs(client: MlflowClient) -> list:
    ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(ids) if ids else []
