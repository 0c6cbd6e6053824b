"""Where traces are read from, without a server: a local store is read in place (no cache
copy), both layouts are grouped by epoch, and the locations of remote stores are resolved
(and refused when unsafe) as MLflow resolves them."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient
from tracedruns import (
    assert_same_matrix,
    assert_same_table,
    local_files,
    log_traced_run,
    reference,
    write_traces,
)

from soi_mlflow.analysis.runs import (
    cache_for,
    load_traces,
    soi_table,
    trace_files,
    trace_matrix,
    trace_paths,
)
from soi_mlflow.errors import SoiInputError
from soi_mlflow.tracking import remote_fs
from soi_mlflow.tracking.local import run_folder_name


@pytest.fixture(scope="module")
def local_runs(module_store: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    client = MlflowClient(module_store)
    exp = client.create_experiment("local")
    root = tmp_path_factory.mktemp("written")
    flat = write_traces(root / "flat", n=3000)
    sharded = write_traces(root / "sharded", n=3000, ranks=3)
    return {
        "uri": module_store,
        "flat": (log_traced_run(client, exp, flat, "flat"), flat),
        "sharded": (log_traced_run(client, exp, sharded, "sharded"), sharded),
    }


@pytest.mark.parametrize("layout", ["flat", "sharded"])
def test_a_local_store_is_read_in_place_with_the_same_results(local_runs, layout) -> None:
    uri = local_runs["uri"]
    run_id, folder = local_runs[layout]
    found = trace_files(run_id, "train", uri)
    artifact_root = Path(
        MlflowClient(uri).get_run(run_id).info.artifact_uri.removeprefix("file://")
    )
    assert found.source == "local"
    assert sorted(found.epochs) == [0, 1, 2]
    assert all(len(files) == (3 if layout == "sharded" else 1) for files in found.epochs.values())
    assert all(Path(p).is_relative_to(artifact_root) for p in found.paths)
    assert [Path(p) for p in found.paths] == trace_paths(run_id, "train", uri)
    frame, tm, table = reference(folder)
    assert_same_matrix(trace_matrix(run_id, "train", uri), tm)
    assert load_traces(run_id, "train", uri).equals(frame)
    assert_same_table(soi_table(run_id, "train", tracking_uri=uri), table)
    cache = cache_for(uri)
    assert not (cache.root / run_folder_name(run_id) / "traces").exists()  # no copy made


def test_shards_of_an_epoch_are_read_as_that_epoch(local_runs) -> None:
    uri = local_runs["uri"]
    flat, sharded = local_runs["flat"][0], local_runs["sharded"][0]
    assert_same_matrix(trace_matrix(sharded, "train", uri), trace_matrix(flat, "train", uri))
    assert_same_table(soi_table(sharded, tracking_uri=uri), soi_table(flat, tracking_uri=uri))


def test_a_run_without_traces_of_the_split_names_the_splits_it_has(local_runs) -> None:
    uri, run_id = local_runs["uri"], local_runs["flat"][0]
    with pytest.raises(
        SoiInputError, match=r"has no traces of split 'ood'; its traced splits: train"
    ):
        trace_matrix(run_id, "ood", uri)
    with pytest.raises(SoiInputError, match="split name"):
        load_traces(run_id, "../train", uri)


def test_reference_files_are_listed_in_epoch_then_rank_order(local_runs) -> None:
    names = [f"{p.parent.name}/{p.name}" for p in local_files(local_runs["sharded"][1])]
    assert names[:4] == [
        "epoch=000/rank=0.parquet",
        "epoch=000/rank=1.parquet",
        "epoch=000/rank=2.parquet",
        "epoch=001/rank=0.parquet",
    ]


# -- locations, resolved as MLflow resolves them -------------------------------------------


def test_artifact_uris_resolve_to_where_the_files_are() -> None:
    run = "0123456789abcdef0123456789abcdef"
    assert remote_fs.local_root(f"file:///data/mlruns/1/{run}/artifacts") == (
        f"/data/mlruns/1/{run}/artifacts"
    )
    assert remote_fs.local_root("/data/mlruns/1") == "/data/mlruns/1"
    assert remote_fs.local_root("s3://bucket/1") is None
    assert remote_fs.http_root(f"mlflow-artifacts:/1/{run}/artifacts", "http://h:5000") == (
        f"http://h:5000/api/2.0/mlflow-artifacts/artifacts/1/{run}/artifacts"
    )
    # a tracking server under a path prefix, and an artifact URI naming its own host
    assert remote_fs.http_root("mlflow-artifacts:/2/x/artifacts", "https://h/mlflow/") == (
        "https://h/mlflow/api/2.0/mlflow-artifacts/artifacts/2/x/artifacts"
    )
    assert remote_fs.http_root("mlflow-artifacts://a:81/3/x", "http://h:5000") == (
        "http://a:81/api/2.0/mlflow-artifacts/artifacts/3/x"
    )
    assert remote_fs.http_root("mlflow-artifacts:/1/x", "sqlite:///m.db") is None
    assert remote_fs.s3_location(f"s3://bucket/root/1/{run}/artifacts") == (
        f"bucket/root/1/{run}/artifacts"
    )


@pytest.mark.parametrize(
    "uri",
    [
        "mlflow-artifacts:/1/../../secrets",
        "mlflow-artifacts:/1/a b/artifacts",
        "mlflow-artifacts:/1/x?y=1",
        "s3://bucket/a/../b",
        "s3://bucket/%2e%2e/b",
    ],
)
def test_locations_that_would_need_escaping_are_left_to_mlflow(uri) -> None:
    assert remote_fs.http_root(uri, "http://h:5000") is None
    assert remote_fs.s3_location(uri) is None


def test_http_reads_carry_mlflows_credentials_without_changing_the_environment() -> None:
    basic = remote_fs.http_options(
        {"MLFLOW_TRACKING_USERNAME": "ann", "MLFLOW_TRACKING_PASSWORD": "pw"}
    )
    assert basic == {"headers": {"Authorization": "Basic YW5uOnB3"}}
    token = remote_fs.http_options(
        {"MLFLOW_TRACKING_TOKEN": "t0k", "MLFLOW_TRACKING_USERNAME": "x"}
    )
    assert token == {"headers": {"Authorization": "Bearer t0k"}}
    assert remote_fs.http_options({"MLFLOW_TRACKING_INSECURE_TLS": "true"}) == {"ssl": False}
    assert remote_fs.http_options({}) == {}


def test_s3_settings_come_from_mlflows_endpoint_variable() -> None:
    fs = remote_fs.s3_filesystem(
        {"MLFLOW_S3_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_DEFAULT_REGION": "eu-west-3"}
    )
    assert fs is not None and fs.region == "eu-west-3"
    assert remote_fs.s3_filesystem({"MLFLOW_S3_IGNORE_TLS": "true"}) is None
