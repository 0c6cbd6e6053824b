"""The shard layout (tracking/names.py) and reading an epoch from several files
(TraceMatrix.from_files): the last visit of an example counts across an epoch's files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from soi_mlflow.analysis.matrix import TraceMatrix
from soi_mlflow.tracking.names import (
    group_trace_files,
    listed_epoch,
    local_trace_files,
    parse_trace_path,
    shard_artifact_path,
    shard_file_name,
    shard_path,
)
from soi_mlflow.tracking.trace_format import build_table, read_trace, write_trace


def test_paths_name_epochs_and_ranks() -> None:
    assert shard_artifact_path("train", 3) + "/" + shard_file_name(1) == (
        "traces/train/epoch=003/rank=1.parquet"
    )
    assert shard_path(12, 0) == "epoch=012/rank=0.parquet"
    assert parse_trace_path("traces/train/epoch=003.parquet") == (3, None)
    assert parse_trace_path("epoch=012/rank=10.parquet") == (12, 10)
    assert parse_trace_path(Path("/cache/x/epoch=1000/rank=2.parquet")) == (1000, 2)
    for other in ("traces/train/.complete", "epoch=001/other.parquet", "epoch=x.parquet"):
        assert parse_trace_path(other) is None
    assert listed_epoch("traces/train/epoch=004", is_dir=True) == 4
    assert listed_epoch("traces/train/epoch=004.parquet", is_dir=False) == 4
    assert listed_epoch("traces/train/epoch=004/rank=0.parquet", is_dir=False) is None
    assert listed_epoch("traces/train/notes", is_dir=True) is None


def test_a_listing_groups_by_epoch_gathered_file_then_ranks_in_number_order() -> None:
    listing = [
        "epoch=001/rank=10.parquet",
        "epoch=001/rank=2.parquet",
        "epoch=000.parquet",
        "epoch=001.parquet",
        "README.md",
    ]
    assert group_trace_files(listing) == {
        0: ["epoch=000.parquet"],
        1: ["epoch=001.parquet", "epoch=001/rank=2.parquet", "epoch=001/rank=10.parquet"],
    }


def _write(path: Path, ids: list[int], p_gold: list[float], member: list[int], epoch: int):
    n = len(ids)
    rows = {
        "example_id": np.array(ids, np.int64),
        "epoch": np.int32(epoch),
        "step": np.zeros(n, np.int64),
        "member_idx": np.array(member, np.int32),
        "task_idx": np.zeros(n, np.int32),
        "gold": np.ones(n, np.int32),
        "pred": np.array([1 if p > 0.5 else 0 for p in p_gold], np.int32),
        "p_gold": np.array(p_gold, np.float32),
        "loss": -np.log(np.array(p_gold, np.float32)),
    }
    names = ["a", "b"] if path.name != "rank=1.parquet" else ["b", "a"]  # rank 1: b first
    return write_trace(path, build_table(rows, names, ["t"]), {"epoch": epoch})


def test_an_epoch_reads_from_its_shards_and_the_last_visit_counts(tmp_path: Path) -> None:
    folder = tmp_path / "traces" / "train"
    # epoch 0 in two shards that overlap on id 3 (rank 1's row counts), epoch 1 gathered
    # without id 4 (its member then comes from rank 1's shard, whose names are b, a)
    _write(folder / "epoch=000" / "rank=0.parquet", [1, 2, 3], [0.9, 0.2, 0.1], [0, 1, 0], 0)
    _write(folder / "epoch=000" / "rank=1.parquet", [3, 4], [0.75, 0.4], [1, 0], 0)
    _write(folder / "epoch=001.parquet", [1, 2, 3], [0.8, 0.7, 0.6], [0, 1, 0], 1)
    paths = local_trace_files(folder)
    assert [p.relative_to(folder).as_posix() for p in paths] == [
        "epoch=000/rank=0.parquet",
        "epoch=000/rank=1.parquet",
        "epoch=001.parquet",
    ]
    tm = TraceMatrix.from_files(paths)
    assert tm.epochs == [0, 1] and tm.example_id.tolist() == [1, 2, 3, 4]
    np.testing.assert_allclose(tm.p_gold[0], [0.9, 0.2, 0.75, 0.4], rtol=1e-3)
    assert tm.correct[0].tolist() == [True, False, True, False]
    assert np.isnan(tm.p_gold[1, 3]) and tm.observed[:, 3].tolist() == [True, False]
    assert tm.member.tolist() == ["a", "b", "a", "b"]  # indices read with each file's names
    # the long frame of the same files (load_traces concatenates them) gives the same matrix
    frame = pd.concat([read_trace(p) for p in paths], ignore_index=True)
    same = TraceMatrix.from_frame(frame)
    np.testing.assert_array_equal(same.p_gold, tm.p_gold)
    assert same.member.tolist() == tm.member.tolist()
