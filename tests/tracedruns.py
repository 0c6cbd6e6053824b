"""Runs with random traces of any size, in either layout (one file per epoch, or DDP
shards ``epoch=NNN/rank=R.parquet``), logged to any store; and the analysis of the same
files read straight from the local folder they were written to (the reference)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from mlflow import MlflowClient

from soi_mlflow.analysis.from_traces import soi_from_traces
from soi_mlflow.analysis.matrix import TraceMatrix
from soi_mlflow.tracking.trace_format import build_table, read_trace, write_trace

MEMBERS = ["books", "movies"]


def write_traces(folder: Path, n: int, epochs: int = 3, ranks: int = 1, seed: int = 0) -> Path:
    """``n`` examples over ``epochs`` epochs in ``folder``; with ``ranks`` > 1 each epoch
    is split over that many shards (example k on rank k % ranks)."""
    rng = np.random.default_rng(seed)
    ids = np.arange(n, dtype=np.int64) * 3 + 7
    gold = rng.integers(0, 3, n).astype(np.int32)
    member_idx = (ids % 2).astype(np.int32)
    for epoch in range(epochs):
        learned = rng.random(n) < 0.3 + 0.2 * epoch
        pred = np.where(learned, gold, rng.integers(0, 3, n)).astype(np.int32)
        p_gold = np.where(learned, 0.5 + rng.random(n) / 2, rng.random(n) / 2).astype(np.float32)
        columns = {
            "example_id": ids,
            "epoch": np.full(n, epoch),
            "step": np.arange(n) // 32 + epoch * 1000,
            "member_idx": member_idx,
            "task_idx": np.zeros(n, dtype=np.int32),
            "gold": gold,
            "pred": pred,
            "p_gold": p_gold,
            "loss": -np.log(p_gold),
        }
        meta = {"split": "train", "epoch": epoch, "capture": "train_pass", "axis": "source"}
        if ranks == 1:
            table = build_table(columns, MEMBERS, ["sentiment"])
            write_trace(folder / f"epoch={epoch:03d}.parquet", table, meta)
            continue
        for rank in range(ranks):
            mine = np.arange(n) % ranks == rank
            table = build_table({k: v[mine] for k, v in columns.items()}, MEMBERS, ["sentiment"])
            write_trace(folder / f"epoch={epoch:03d}" / f"rank={rank}.parquet", table, meta)
    return folder


def local_files(folder: Path) -> list[Path]:
    """The files of ``folder`` in epoch order, an epoch's shards in rank order."""
    return sorted(folder.rglob("*.parquet"), key=lambda p: (p.parent.name, p.name))


def log_traced_run(client: MlflowClient, experiment_id: str, folder: Path, name: str) -> str:
    """A FINISHED run holding ``folder`` as its ``traces/train``."""
    run = client.create_run(experiment_id, run_name=name)
    client.log_artifacts(run.info.run_id, str(folder), "traces/train")
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def reference(folder: Path) -> tuple[pd.DataFrame, TraceMatrix, pd.DataFrame]:
    """The long trace, the matrix and the SOI table of the files in ``folder``."""
    files = local_files(folder)
    frame = pd.concat([read_trace(p) for p in files], ignore_index=True)
    return frame, TraceMatrix.from_files(files), soi_from_traces(frame)


def assert_same_matrix(a: TraceMatrix, b: TraceMatrix) -> None:
    assert a.epochs == b.epochs
    np.testing.assert_array_equal(a.example_id, b.example_id)
    np.testing.assert_array_equal(a.gold, b.gold)
    np.testing.assert_array_equal(a.p_gold, b.p_gold)
    np.testing.assert_array_equal(a.correct, b.correct)
    assert list(a.member.astype(str)) == list(b.member.astype(str))
    assert (a.observed is None) == (b.observed is None)


def assert_same_table(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Equal SOI tables, rows matched by example id (run metadata in attrs aside)."""
    a = a.sort_values("example_id").reset_index(drop=True)
    b = b.sort_values("example_id").reset_index(drop=True)[list(a.columns)]
    pd.testing.assert_frame_equal(a, b, check_categorical=False)
