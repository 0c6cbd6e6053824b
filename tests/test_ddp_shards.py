"""Shard mode on 2 CPU processes (gloo): the same tiny training, gathered on rank 0 and
sharded per rank, gives the same per-epoch rows, metrics and analysis; each example has
one row per epoch although the distributed sampler visits one twice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ddphelp import EPOCHS, N_TRAIN, N_VAL, run_settings
from mlflow import MlflowClient

from soi_mlflow.analysis.after_training import traced_epochs
from soi_mlflow.analysis.cartography import dynamics
from soi_mlflow.analysis.runs import load_traces, soi_table, trace_matrix
from soi_mlflow.tracking.names import group_trace_files
from soi_mlflow.tracking.trace_format import read_trace

pytestmark = pytest.mark.e2e
SPLITS = {"train": N_TRAIN, "validation": N_VAL}


@pytest.fixture(scope="module")
def runs(module_store: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return run_settings(module_store, tmp_path_factory.mktemp("ddp"))


def _files(uri: str, run_id: str, split: str) -> list[str]:
    client = MlflowClient(uri)
    out = []
    for entry in client.list_artifacts(run_id, f"traces/{split}"):
        inner = client.list_artifacts(run_id, entry.path) if entry.is_dir else [entry]
        out += [a.path for a in inner]
    return sorted(out)


def _rows(uri: str, run_id: str, split: str) -> pd.DataFrame:
    frame = load_traces(run_id, split, uri)
    return frame.sort_values(["epoch", "example_id"], ignore_index=True)


def test_each_setting_has_its_layout(module_store: str, runs: dict[str, str]) -> None:
    for split in SPLITS:
        gathered = _files(module_store, runs["gathered"], split)
        assert gathered == [f"traces/{split}/epoch={e:03d}.parquet" for e in range(EPOCHS)]
        for name in ("sharded", "auto"):  # auto: past the lowered threshold
            shards = [
                f"traces/{split}/epoch={e:03d}/rank={r}.parquet"
                for e in range(EPOCHS)
                for r in range(2)
            ]
            assert _files(module_store, runs[name], split) == shards
            grouped = group_trace_files(shards)
            assert list(grouped) == list(range(EPOCHS))
            assert all(len(files) == 2 for files in grouped.values())


def test_sharded_rows_equal_the_gathered_rows(module_store: str, runs: dict[str, str]) -> None:
    for split, n in SPLITS.items():
        gathered = _rows(module_store, runs["gathered"], split)
        # each example once per epoch: the sampler's padded repeat is gone
        assert len(gathered) == EPOCHS * n
        assert not gathered.duplicated(["epoch", "example_id"]).any()
        for name in ("sharded", "auto"):
            pd.testing.assert_frame_equal(_rows(module_store, runs[name], split), gathered)


def test_shards_are_disjoint_and_the_repeat_is_dropped_below(
    module_store: str, runs: dict[str, str], tmp_path: Path
) -> None:
    """101 examples on 2 ranks: each rank visits 51; the repeated one keeps its visit on
    rank 1 (as the gathered path's last-visit rule does), so rank 0's shard has 50."""
    from mlflow.artifacts import download_artifacts

    run = runs["sharded"]
    for epoch in range(EPOCHS):
        folder = f"traces/train/epoch={epoch:03d}"
        local = Path(
            download_artifacts(
                run_id=run, artifact_path=folder, tracking_uri=module_store, dst_path=str(tmp_path)
            )
        )
        parts = [read_trace(local / f"rank={r}.parquet") for r in range(2)]
        assert [len(p) for p in parts] == [50, 51]
        assert not set(parts[0]["example_id"]) & set(parts[1]["example_id"])


def test_metrics_equal_the_gathered_metrics(module_store: str, runs: dict[str, str]) -> None:
    client = MlflowClient(module_store)
    gathered = client.get_run(runs["gathered"]).data.metrics
    assert {"train/loss", "train/even/acc", "val/odd/loss"} <= set(gathered)
    for name in ("sharded", "auto"):
        sharded = client.get_run(runs[name]).data.metrics
        assert sharded.keys() == gathered.keys()
        for key in gathered:
            history = [m.value for m in client.get_metric_history(runs[name], key)]
            expected = [m.value for m in client.get_metric_history(runs["gathered"], key)]
            assert len(history) == EPOCHS
            assert history == pytest.approx(expected, rel=1e-12, abs=1e-12), key


def test_analysis_of_the_sharded_run_equals_the_gathered(
    module_store: str, runs: dict[str, str]
) -> None:
    for split in SPLITS:
        soi = soi_table(runs["gathered"], split, tracking_uri=module_store)
        assert soi["soi"].nunique() > 1  # the training moves: a table worth comparing
        gathered = trace_matrix(runs["gathered"], split, module_store)
        maps = dynamics(gathered)
        for name in ("sharded", "auto"):
            other = soi_table(runs[name], split, tracking_uri=module_store)
            pd.testing.assert_frame_equal(other, soi, check_like=False)
            tm = trace_matrix(runs[name], split, module_store)
            assert tm.epochs == list(range(EPOCHS)) and tm.n_examples == SPLITS[split]
            pd.testing.assert_frame_equal(dynamics(tm), maps)
            assert list(tm.member.categories) == list(gathered.member.categories)
            assert np.array_equal(tm.p_gold, gathered.p_gold, equal_nan=True)
        client = MlflowClient(module_store)
        assert traced_epochs(client, runs["sharded"]) == {"train": EPOCHS, "validation": EPOCHS}
