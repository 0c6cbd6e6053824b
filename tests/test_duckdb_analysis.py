"""The analysis on DuckDB gives the in-memory path's tables (to 1e-6) on planted runs.

Real runs in a real SQLite store (``plantruns.py``: known subsets; ``log_synthetic_run``:
uneven sampling, unobserved epochs, examples never traced), and trace files written
here with repeated visits within an epoch (the last counts) and more than 64 epochs (bit
masks of several words). ``soi_table`` (in memory) is the reference for every table:
SOI, cartography, forgetting, coverage, transitions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mlflow import MlflowClient
from plantruns import PATTERNS, plant_run
from synthtraces import assert_same_table
from tracehelp import log_synthetic_run

from soi_mlflow.analysis import load_traces, soi_table, traces
from soi_mlflow.analysis.cartography import forgetting_rank, regions
from soi_mlflow.analysis.duck.dynamics import soi_from_files
from soi_mlflow.analysis.duck.engine import Engine, engine_soi_table
from soi_mlflow.analysis.duck.files import epoch_of, file_rows
from soi_mlflow.analysis.duck.limits import Limits, connection, parse_size
from soi_mlflow.analysis.from_traces import soi_from_matrix
from soi_mlflow.analysis.matrix import TraceMatrix
from soi_mlflow.analysis.report import coverage_table
from soi_mlflow.analysis.runs import trace_paths
from soi_mlflow.analysis.transition_tables import transition_matrix
from soi_mlflow.cli import main
from soi_mlflow.errors import SoiInputError

DUCK = Engine("duckdb", Limits.parse("256MB"))
UNEVEN = {  # None: not visited in that epoch
    1: [1, 1, 1, 1],
    2: [None, 0, None, 1],
    3: [1, None, 0, None],
    4: [None, None, 1, None],  # once: too few epochs
    5: [0, 1, None, 0],
    6: [1, 0, 1, 1],
}


@pytest.fixture(scope="module")
def runs(module_store: str) -> dict[str, str]:
    client = MlflowClient(module_store)
    experiment = client.create_experiment("planted")
    planted, _ = plant_run(client, experiment, name="planted-a")
    other, _ = plant_run(client, experiment, members=("movies", "books"), name="planted-b")
    client.create_run(experiment, run_name="no-traces")  # skipped by --experiment
    members = {i: ("small" if i < 4 else "big") for i in UNEVEN}
    uneven = log_synthetic_run(module_store, UNEVEN, members, extra_examples={9: "big"})
    return {"planted": planted, "other": other, "uneven": uneven, "uri": module_store}


@pytest.mark.parametrize("name", ["planted", "other", "uneven"])
def test_duckdb_tables_equal_the_in_memory_ones(runs, name) -> None:
    run, uri = runs[name], runs["uri"]
    memory = soi_table(run, tracking_uri=uri)
    duck = engine_soi_table(DUCK, run, tracking_uri=uri)
    assert duck.attrs["engine"] == "duckdb"
    assert_same_table(memory, duck)
    assert {k: duck.attrs[k] for k in memory.attrs} == memory.attrs
    assert_same_table(coverage_table(memory), coverage_table(duck))
    assert regions(memory).equals(regions(duck))
    np.testing.assert_array_equal(forgetting_rank(memory), forgetting_rank(duck))
    if name == "uneven":  # the example never traced, and the one seen once, are counted
        soi = duck.set_index("example_id")["soi"].astype(str)
        assert soi[9] == soi[4] == "too_few_epochs"
        assert duck.set_index("example_id")["n_observed"].to_dict()[2] == 2


def test_planted_subsets_and_transitions_on_duckdb(runs) -> None:
    uri = runs["uri"]
    a = engine_soi_table(DUCK, runs["planted"], tracking_uri=uri)
    b = engine_soi_table(DUCK, runs["other"], tracking_uri=uri)
    assert sorted(a["soi"].astype(str)) == sorted(list(PATTERNS) * 2)
    memory = transition_matrix(
        soi_table(runs["planted"], tracking_uri=uri),
        soi_table(runs["other"], tracking_uri=uri),
        normalize="row",
    )
    duck = transition_matrix(a, b, normalize="row")
    pd.testing.assert_frame_equal(memory, duck, atol=1e-6, rtol=0)
    assert duck.attrs["coverage"] == memory.attrs["coverage"]


def _write(path, ids, member, correct, p_gold) -> None:
    gold = np.zeros(len(ids), dtype=np.int32)
    table = pa.table(
        {
            "example_id": pa.array(ids, pa.int64()),
            "member": pa.DictionaryArray.from_arrays(
                pa.array(member, pa.int32()), pa.array(["z", "a"])
            ),
            "gold": gold,
            "pred": np.where(correct, 0, 1).astype(np.int32),
            "p_gold": np.asarray(p_gold, dtype=np.float32),
        }
    ).replace_schema_metadata({"soi.trace_schema": "1", "soi.epoch": path.stem[6:]})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


@pytest.mark.parametrize("epochs", [5, 70])
def test_last_visits_unobserved_epochs_and_id_ranges(tmp_path, epochs) -> None:
    """Repeated ids within an epoch (the last row counts), examples missing from some
    epochs, ids read in several ranges, and 70 epochs (two 64-bit mask words)."""
    rng = np.random.default_rng(epochs)
    for e in range(epochs):
        ids = np.sort(rng.choice(300, size=280, replace=True))  # repeats and gaps
        _write(
            tmp_path / f"epoch={e:03d}.parquet",
            ids,
            (ids % 2),
            rng.random(len(ids)) < 0.5 + e / (2 * epochs),
            rng.random(len(ids)),
        )
    paths = sorted(tmp_path.glob("*.parquet"))
    memory = soi_from_matrix(TraceMatrix.from_files(paths))
    with connection(Limits.parse("64MB")) as con:
        for max_groups in (10**6, 37):
            duck = soi_from_files(con, file_rows(paths), max_groups=max_groups)
            assert (duck.attrs["chunks"] > 1) == (max_groups < 280)
            assert_same_table(memory, duck)


def test_shards_of_one_epoch_are_read_as_one_epoch(tmp_path) -> None:
    ids = np.arange(10)
    for e in range(3):
        ok = (ids + e) % 3 == 0
        whole = tmp_path / "whole" / f"epoch={e:03d}.parquet"
        _write(whole, ids, ids % 2, ok, np.where(ok, 0.8, 0.3))
        for rank in range(2):
            part = ids[rank::2]
            shard = tmp_path / "shards" / f"epoch={e:03d}" / f"rank={rank}.parquet"
            _write(shard, part, part % 2, ok[rank::2], np.where(ok[rank::2], 0.8, 0.3))
    shards = sorted((tmp_path / "shards").rglob("*.parquet"))
    assert [epoch_of(p) for p in shards[:2]] == [(0, 0), (0, 1)]
    memory = soi_from_matrix(TraceMatrix.from_files(sorted((tmp_path / "whole").glob("*"))))
    with connection() as con:
        duck = soi_from_files(con, file_rows(shards))
    assert_same_table(memory, duck)


def test_traces_relation_over_two_runs(runs) -> None:
    uri, ids = runs["uri"], [runs["planted"], runs["uneven"]]
    rel = traces(ids, "train", uri)
    got = rel.df().sort_values(["run_id", "epoch", "example_id"], ignore_index=True)
    assert list(got.columns[:3]) == ["run_id", "epoch", "example_id"]
    want = pd.concat([load_traces(r, "train", uri).assign(run_id=r) for r in ids])
    want = want.sort_values(["run_id", "epoch", "example_id"], ignore_index=True)
    assert len(got) == len(want) == 48 + sum(v is not None for s in UNEVEN.values() for v in s)
    for column in ("run_id", "epoch", "example_id", "gold", "pred", "p_gold", "loss"):
        assert got[column].tolist() == want[column].tolist(), column
    assert got["member"].tolist() == want["member"].astype(str).tolist()
    per_run = dict(rel.aggregate("run_id, count(*) AS n", "run_id").fetchall())
    assert per_run == {runs["planted"]: 48, runs["uneven"]: len(want) - 48}
    with pytest.raises(SoiInputError, match="run_ids: 'x; DROP TABLE t'"):
        traces(["x; DROP TABLE t"], tracking_uri=uri)


def test_analyze_experiment_analyses_every_traced_run(runs, capsys) -> None:
    code = main(["analyze", "--experiment", "planted", "--engine", "duckdb",
                 "--memory-limit", "256MB", "--tracking-uri", runs["uri"]])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "[1/2] analysing run planted-a" in out and "[2/2] analysing run planted-b" in out
    assert "no-traces" not in out and "2 run(s) analysed" in out
    client = MlflowClient(runs["uri"])
    for run in (runs["planted"], runs["other"]):
        assert client.get_run(run).data.metrics["soi/train/coverage"] == 1.0


def test_auto_engine_follows_the_size_of_the_traces(runs) -> None:
    paths = trace_paths(runs["planted"], "train", runs["uri"])
    assert Engine("auto", Limits(memory=2**30)).choose(paths) == "memory"
    assert Engine("auto", Limits(memory=1000)).choose(paths) == "duckdb"
    assert Engine("memory", Limits(memory=1000)).choose(paths) == "memory"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("lots", "--memory-limit: expected a size with a unit, such as 512MB"),
        ("2", "--memory-limit: expected a size with a unit"),
        ("1MB", "--memory-limit: expected at least 32 MiB, got '1MB'"),
    ],
)
def test_bad_memory_limits_are_named_before_any_work(runs, capsys, value, message) -> None:
    code = main(["analyze", "--run-id", runs["planted"], "--memory-limit", value,
                 "--tracking-uri", runs["uri"]])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert message in err.splitlines()[0], err


def test_sizes_parse_with_their_units() -> None:
    assert parse_size("2GB", "x") == 2 * 10**9
    assert parse_size("1.5 GiB", "x") == 3 * 2**29
    assert parse_size("512mib", "x") == 512 * 2**20
    with pytest.raises(SoiInputError, match="--engine: expected one of auto, memory, duckdb"):
        Engine.parse("spark")
