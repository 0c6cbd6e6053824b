"""Two trainings writing to one fresh SQLite store at once (issue 11, item 5): both runs
complete with every epoch's trace, and the database stays sound."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from faulthelp import start_training
from mlflow import MlflowClient

pytestmark = pytest.mark.e2e


def test_two_trainings_on_one_fresh_sqlite_store(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"  # not created yet: both processes race to create its tables
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_RUN_ID", "MLFLOW_TRACKING_URI")}
    children = [
        start_training(uri, Path.cwd(), env, seed=seed, max_examples=40, eval_max_examples=20)
        for seed in (0, 1)
    ]
    outputs = [child.communicate(timeout=300)[0] for child in children]
    for child, out in zip(children, outputs, strict=True):
        assert child.returncode == 0, out[-3000:]
    run_ids = {out.split("RUN ")[-1].split()[0] for out in outputs}
    assert len(run_ids) == 2
    client = MlflowClient(uri)
    for run_id in run_ids:
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        assert [a.path for a in client.list_artifacts(run_id, "traces/train")] == [
            "traces/train/epoch=000.parquet",
            "traces/train/epoch=001.parquet",
        ]
        assert [m.step for m in client.get_metric_history(run_id, "train/loss")] == [0, 1]
    assert {client.get_run(r).data.tags["soi.seed"] for r in run_ids} == {"0", "1"}
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
