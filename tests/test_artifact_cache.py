"""The artifact cache: what analyses log is read as the store holds it now, even when a
re-analysis logged it again with the same size; what never changes is fetched once."""

from __future__ import annotations

import pandas as pd
from mlflow import MlflowClient

from soi_mlflow.analysis.runs import cache_for
from soi_mlflow.tracking.artifacts import log_table


def test_a_table_logged_again_is_read_anew_and_a_trace_only_once(store: str, tmp_path) -> None:
    client = MlflowClient(store)
    run_id = client.create_run(client.create_experiment("cache")).info.run_id
    before = pd.DataFrame({"low": [0.1, 0.2], "high": [0.3, 0.4]})
    after = pd.DataFrame({"low": [-0.5, 0.25], "high": [0.75, 0.9]})  # same shape, new values
    log_table(client, run_id, before, "intervals")
    trace = tmp_path / "epoch=000.parquet"
    before.to_parquet(trace)
    client.log_artifact(run_id, str(trace), "traces/train")
    cache = cache_for(store)
    first = cache.file(run_id, "tables/intervals.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(first), before)
    size = first.stat().st_size
    log_table(client, run_id, after, "intervals")  # as analyze --parent-run-id does
    again = cache_for(store).file(run_id, "tables/intervals.parquet")
    assert again.stat().st_size == size  # a size check alone could not tell them apart
    pd.testing.assert_frame_equal(pd.read_parquet(again), after)
    fetched = cache.downloads
    cache.file(run_id, "traces/train/epoch=000.parquet")
    cache.file(run_id, "traces/train/epoch=000.parquet")
    assert cache.downloads == fetched + 1  # a trace never changes: fetched once


def test_the_cache_follows_the_variable_as_it_is_now(tmp_path, monkeypatch) -> None:
    """``cache_for()`` with no URI names the store ``MLFLOW_TRACKING_URI`` names at the call,
    not the one it named at the first call."""
    first, second = (f"sqlite:///{tmp_path}/{name}.db" for name in ("first", "second"))
    for uri in (first, second):
        MlflowClient(uri).search_experiments()  # the stores exist
    monkeypatch.setenv("MLFLOW_TRACKING_URI", first)
    assert cache_for().tracking_uri == first
    monkeypatch.setenv("MLFLOW_TRACKING_URI", second)
    assert cache_for().tracking_uri == second
    assert cache_for(first) is cache_for(first)  # one cache per store
