"""The trace file format (schema v3, and v1 and v2 files read as before): round trip,
size, constant columns, version check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
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
    assert read_metadata(path) == {
        "trace_schema": 3,
        "loss": "derived",
        "constant": {"epoch": 4},
        "capture": "eval_pass",
        "epoch": 4,
    }


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
        TraceFormatError, match="trace schema version '99'; this soi-mlflow reads versions 1, 2, 3"
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


def _write_v1(path: Path, table: pa.Table, loss: np.ndarray, meta: dict) -> Path:
    """A file as schema v1 wrote it (every loss stored, rounded like p_gold), from a v2
    table of the same rows: what runs recorded before v2 hold."""
    order = np.argsort(table["example_id"].to_numpy(), kind="stable")
    v1 = table.set_column(
        table.schema.get_field_index("loss"), "loss", pa.array(round_mantissa(loss[order]))
    )
    metadata = {"soi.trace_schema": "1", **{f"soi.{k}": json.dumps(v) for k, v in meta.items()}}
    pq.write_table(
        v1.replace_schema_metadata(metadata),
        path,
        compression="zstd",
        use_dictionary=["member", "task", "gold", "pred"],
        write_statistics=False,
    )
    return path


def test_loss_is_derived_where_it_is_minus_log_p_gold_and_stored_elsewhere(
    tmp_path: Path,
) -> None:
    rows = _rows(2000)
    rows["p_gold"][7], rows["loss"][7] = 0.0, 120.0  # underflowed: -log p_gold is inf
    path = write_trace(tmp_path / "t.parquet", build_table(rows, ["a", "b"], ["t"]), {})
    stored = pq.read_table(path)["loss"]
    assert stored.null_count == 1999  # only the underflowed row keeps its loss
    df = read_trace(path)
    order = np.argsort(rows["example_id"], kind="stable")
    np.testing.assert_allclose(df["loss"], rows["loss"][order], rtol=2.5e-4, atol=1.3e-4)
    assert df["loss"].dtype == np.float32 and df["loss"].notna().all()
    assert df.loc[df["p_gold"] == 0, "loss"].tolist() == [120.0]
    assert read_metadata(path)["loss"] == "derived"


def test_old_files_read_as_before_and_analyses_agree_with_them(tmp_path: Path) -> None:
    """Schema v1 files (every loss stored) read unchanged, and cartography and AUM over
    v2 files of the same rows equal those over v1 files to 1e-6."""
    from soi_mlflow.analysis.noise import detector_scores

    frames: dict[str, list[pd.DataFrame]] = {"v1": [], "v2": []}
    for epoch in range(4):
        rows = _rows(500, seed=epoch)
        rows["example_id"] = np.arange(500)
        rows["epoch"] = epoch
        rows["margin"] = np.random.default_rng(epoch).normal(size=500).astype(np.float32)
        table = build_table(rows, ["a", "b"], ["t"])
        meta = {"epoch": epoch, "capture": "train_pass"}
        new = write_trace(tmp_path / f"v2-{epoch}.parquet", table, meta)
        old = _write_v1(tmp_path / f"v1-{epoch}.parquet", table, rows["loss"], meta)
        frames["v2"].append(read_trace(new))
        frames["v1"].append(before := read_trace(old))
        assert read_metadata(old)["trace_schema"] == 1
        np.testing.assert_array_equal(before["loss"], round_mantissa(rows["loss"]))
        after = frames["v2"][-1]
        pd.testing.assert_frame_equal(before.drop(columns="loss"), after.drop(columns="loss"))
        np.testing.assert_allclose(after["loss"], before["loss"], rtol=2.5e-4, atol=1.3e-4)
    v1 = detector_scores(pd.concat(frames["v1"], ignore_index=True))
    v2 = detector_scores(pd.concat(frames["v2"], ignore_index=True))
    for column in ("confidence", "aum", "forgetting", "soi_flag"):
        np.testing.assert_allclose(v2[column], v1[column], rtol=0, atol=1e-6)


def _write_v2(path: Path, table: pa.Table, meta: dict) -> Path:
    """A file as schema v2 wrote it (every column stored, nullable, zstd throughout)."""
    metadata = {"soi.trace_schema": "2", "soi.loss": "derived"}
    metadata |= {f"soi.{k}": json.dumps(v) for k, v in meta.items()}
    with pq.ParquetWriter(
        path, table.schema, compression="zstd", write_statistics=False, store_schema=False
    ) as writer:
        writer.write_table(table.replace_schema_metadata(None))
        writer.add_key_value_metadata(metadata)
    return path


def _evaluation_rows(n: int, epoch: int) -> dict:
    """An evaluation pass: one step for every row, every loss derivable."""
    rows = _rows(n, seed=epoch)
    rows["epoch"], rows["step"] = epoch, np.full(n, 30 * (epoch + 1))
    return rows


def test_constant_columns_are_kept_once_and_read_back(tmp_path: Path) -> None:
    table = build_table(_evaluation_rows(300, 2), ["a", "b"], ["t"])
    path = write_trace(tmp_path / "eval.parquet", table, {"epoch": 2})
    stored = pq.read_schema(path)
    assert {"epoch", "step", "loss"}.isdisjoint(stored.names)  # left out of the file
    assert all(not field.nullable for field in stored)  # no definition levels stored
    assert read_metadata(path)["constant"] == {"epoch": 2, "step": 90}
    v2 = read_trace(_write_v2(tmp_path / "v2.parquet", table, {"epoch": 2}))
    pd.testing.assert_frame_equal(read_trace(path), v2)  # same columns, order, dtypes
    assert path.stat().st_size < (tmp_path / "v2.parquet").stat().st_size - 300

    train = build_table(_rows(300), ["a", "b"], ["t"])  # one step per batch: kept
    kept = write_trace(tmp_path / "train.parquet", train, {})
    assert "step" in pq.read_schema(kept).names and "epoch" not in pq.read_schema(kept).names
    assert read_trace(kept)["step"].tolist() == train["step"].to_pylist()


def test_the_duckdb_relation_reads_v2_and_v3_files_alike(tmp_path: Path) -> None:
    from soi_mlflow.analysis.duck.files import file_rows
    from soi_mlflow.analysis.duck.relation import trace_relation

    paths = {}
    for version, writer in (("v2", _write_v2), ("v3", write_trace)):
        folder = tmp_path / version
        folder.mkdir()
        for epoch in range(2):
            table = build_table(_evaluation_rows(200, epoch), ["a", "b"], ["t"])
            writer(folder / f"epoch={epoch:03d}.parquet", table, {"epoch": epoch})
        paths[version] = sorted(str(p) for p in folder.iterdir())
    mixed = [paths["v3"][0], paths["v2"][1]]  # a run resumed by a newer version
    frames = {}
    for name, files in (*paths.items(), ("mixed", mixed)):
        frame = trace_relation(file_rows(files)).df()
        frames[name] = frame.sort_values(["epoch", "example_id"], ignore_index=True)
    assert list(frames["v3"].columns) == list(frames["v2"].columns)
    assert frames["v3"]["step"].tolist() == [30] * 200 + [60] * 200
    for name in ("v3", "mixed"):
        pd.testing.assert_frame_equal(frames[name], frames["v2"], check_categorical=False)


@pytest.mark.parametrize("constant", ['{"epoch": "4"}', '{"label": 1}', "[4]", "not json"])
def test_a_bad_constant_entry_is_refused_naming_the_file(tmp_path: Path, constant) -> None:
    path = write_trace(tmp_path / "t.parquet", build_table(_rows(10), ["a", "b"], ["t"]), {})
    table = pq.read_table(path)
    meta = dict(table.schema.metadata) | {b"soi.constant": constant.encode()}
    pq.write_table(table.replace_schema_metadata(meta), tmp_path / "bad.parquet")
    with pytest.raises(TraceFormatError, match=r"bad\.parquet.* soi\.constant"):
        read_trace(tmp_path / "bad.parquet")
