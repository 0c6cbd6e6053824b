"""Large synthetic trace files, written fast (numpy + pyarrow), for the out-of-core tests
and ``bench/analysis_scale.py``.

Each example has its own learning epoch and noise, so every subset of interest occurs.
Files carry the schema-v1 encodings and metadata the recorder writes (no statistics,
delta-encoded ids, byte-stream-split floats), with only the columns the analysis reads:
``example_id, member, gold, pred, p_gold``. With ``visited < 1`` each epoch holds a
random share of the examples (sampling), so the sparse path is exercised.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from soi_mlflow.analysis.matrix import TraceMatrix

MEMBERS = ["books", "movies", "news"]  # sorted: the in-memory path's categories either way


def _write(path: Path, ids: np.ndarray, member: np.ndarray, p: np.ndarray, ok: np.ndarray, e: int):
    gold = (ids % 2).astype(np.int32)
    table = pa.table(
        {
            "example_id": pa.array(ids),
            "member": pa.DictionaryArray.from_arrays(pa.array(member), pa.array(MEMBERS)),
            "gold": pa.array(gold),
            "pred": pa.array(np.where(ok, gold, 1 - gold).astype(np.int32)),
            "p_gold": pa.array(p),
        }
    ).replace_schema_metadata({"soi.trace_schema": "1", "soi.epoch": str(e)})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        table,
        path,
        compression="zstd",
        compression_level=1,
        use_dictionary=["member", "gold", "pred"],
        column_encoding={"example_id": "DELTA_BINARY_PACKED", "p_gold": "BYTE_STREAM_SPLIT"},
        write_statistics=False,
    )


def write_run(
    folder: Path,
    n: int,
    epochs: int,
    seed: int = 0,
    visited: float = 1.0,
    first_id: int = 0,
    keep: bool = False,
) -> tuple[list[Path], TraceMatrix | None]:
    """``epochs`` files ``folder/epoch=NNN.parquet`` of ``n`` examples; with ``keep``, also
    the same traces as a ``TraceMatrix`` (the in-memory path's input, built directly)."""
    rng = np.random.default_rng(seed)
    ids = np.arange(first_id, first_id + n, dtype=np.int64)
    member = (ids % len(MEMBERS)).astype(np.int32)
    learn = rng.uniform(-1, epochs + 1, n).astype(np.float32)  # epoch it is learned at
    noise = rng.uniform(0.05, 0.4, n).astype(np.float32)
    p_all = np.empty((epochs, n), np.float32) if keep else None
    ok_all = np.empty((epochs, n), bool) if keep else None
    seen_all = np.empty((epochs, n), bool) if keep and visited < 1 else None
    paths = []
    for e in range(epochs):
        p = 1 / (1 + np.exp(learn - e, dtype=np.float32))
        p += noise * rng.standard_normal(n, dtype=np.float32)
        np.clip(p, 0.0, 1.0, out=p)
        ok = p > 0.5
        seen = rng.random(n, dtype=np.float32) < visited if visited < 1 else None
        path = folder / f"epoch={e:03d}.parquet"
        if seen is None:
            _write(path, ids, member, p, ok, e)
        else:
            _write(path, ids[seen], member[seen], p[seen], ok[seen], e)
        paths.append(path)
        if keep:
            p_all[e], ok_all[e] = p, ok
            if seen_all is not None:
                seen_all[e] = seen
    if not keep:
        return paths, None
    if seen_all is not None:
        p_all[~seen_all] = np.nan
        ok_all &= seen_all
        traced = seen_all.any(axis=0)
        ids, member = ids[traced], member[traced]
        p_all, ok_all, seen_all = p_all[:, traced], ok_all[:, traced], seen_all[:, traced]
    tm = TraceMatrix(
        example_id=ids,
        member=pd.Categorical.from_codes(member, MEMBERS),
        gold=(ids % 2).astype(np.int32),
        epochs=list(range(epochs)),
        p_gold=p_all,
        correct=ok_all,
        observed=seen_all,
    )
    return paths, tm


def assert_same_table(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Same columns, rows, dtypes and categories; floats to 1e-6 (NaN where NaN)."""
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b)
    for name in a.columns:
        x, y = a[name], b[name]
        if isinstance(x.dtype, pd.CategoricalDtype):
            assert list(x.cat.categories) == list(y.cat.categories), name
            assert np.array_equal(x.cat.codes.to_numpy(), y.cat.codes.to_numpy()), name
        elif pd.api.types.is_float_dtype(x.dtype):
            assert y.dtype == x.dtype, name
            np.testing.assert_allclose(y.to_numpy(), x.to_numpy(), rtol=0, atol=1e-6, err_msg=name)
        else:
            assert y.dtype == x.dtype, name
            assert np.array_equal(x.to_numpy(), y.to_numpy()), name
