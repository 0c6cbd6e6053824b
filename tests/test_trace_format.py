"""The trace file format (schema v1): round trip, size, version check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from soi_mlflow.data.ids import index_ids
from soi_mlflow.tracking.trace_format import (
    TraceFormatError,
    build_table,
    read_metadata,
    read_trace,
    round_mantissa,
    write_trace,
)


def _rows(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    p = rng.beta(8, 1.5, n).astype(np.float32)
    return {
        "example_id": rng.permutation(index_ids("d", "c", "train", np.arange(n))),
        "epoch": 4,
        "step": rng.integers(0, 100, n),
        "member_idx": rng.integers(0, 2, n),
        "task_idx": np.zeros(n, dtype=int),
        "gold": rng.integers(0, 2, n),
        "pred": rng.integers(0, 2, n),
        "p_gold": p,
        "loss": -np.log(p),
    }


def test_round_trip_sorts_by_id_and_keeps_values(tmp_path: Path) -> None:
    rows = _rows(1000)
    path = write_trace(
        tmp_path / "t.parquet",
        build_table(rows, ["a", "b"], ["t"]),
        {"capture": "eval_pass", "epoch": 4},
    )
    df = read_trace(path)
    assert df["example_id"].is_monotonic_increasing and len(df) == 1000
    order = np.argsort(rows["example_id"])
    assert df["gold"].tolist() == rows["gold"][order].tolist()
    assert df["member"].tolist() == [["a", "b"][i] for i in rows["member_idx"][order]]
    np.testing.assert_allclose(df["p_gold"], rows["p_gold"][order], rtol=1.3e-4)
    assert (df["epoch"] == 4).all()
    assert read_metadata(path) == {"trace_schema": 1, "capture": "eval_pass", "epoch": 4}


def test_size_is_under_eight_bytes_per_example(tmp_path: Path) -> None:
    path = write_trace(tmp_path / "t.parquet", build_table(_rows(4000), ["a", "b"], ["t"]), {})
    assert path.stat().st_size / 4000 < 8


def test_mantissa_rounding_error_is_bounded() -> None:
    x = np.random.default_rng(1).random(100_000).astype(np.float32) + 1e-6
    assert np.max(np.abs(round_mantissa(x) - x) / x) <= 2.0**-13
    assert np.isinf(round_mantissa(np.array([np.inf], dtype=np.float32)))[0]


def test_unknown_schema_version_is_refused(tmp_path: Path) -> None:
    path = write_trace(tmp_path / "t.parquet", build_table(_rows(10), ["a", "b"], ["t"]), {})
    table = pq.read_table(path)
    meta = dict(table.schema.metadata)
    meta[b"soi.trace_schema"] = b"99"
    pq.write_table(table.replace_schema_metadata(meta), tmp_path / "future.parquet")
    with pytest.raises(
        TraceFormatError, match="trace schema version '99'; this soi-mlflow reads version 1"
    ):
        read_trace(tmp_path / "future.parquet")


def test_margin_is_optional_and_small(tmp_path: Path) -> None:
    rows = _rows(4000)
    rows["margin"] = np.random.default_rng(2).normal(scale=3, size=4000).astype(np.float32)
    path = write_trace(tmp_path / "m.parquet", build_table(rows, ["a", "b"], ["t"]), {})
    df = read_trace(path)
    order = np.argsort(rows["example_id"], kind="stable")
    np.testing.assert_allclose(df["margin"], rows["margin"][order], rtol=2.0**-9)
    assert path.stat().st_size / 4000 < 8.5
    plain = write_trace(tmp_path / "p.parquet", build_table(_rows(10), ["a", "b"], ["t"]), {})
    assert "margin" not in read_trace(plain).columns  # files without it still read
