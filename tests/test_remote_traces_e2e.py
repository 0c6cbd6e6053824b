"""Traces read where the store keeps them, against real servers on 127.0.0.1: a real
``mlflow server`` serving artifacts (read over HTTP range requests) whose default artifact
root is S3 on a real moto server (read through pyarrow's S3 filesystem). Each read gives
the tables a local read of the same files gives, and takes the path it should."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from byteproxy import ByteCountingProxy
from mlflow import MlflowClient
from servers import MlflowServer, free_port
from tracedruns import (
    assert_same_matrix,
    assert_same_table,
    local_files,
    log_traced_run,
    reference,
    write_traces,
)

from soi_mlflow.analysis.matrix import TraceMatrix
from soi_mlflow.analysis.runs import (
    cache_for,
    load_traces,
    soi_table,
    trace_files,
    trace_matrix,
)
from soi_mlflow.tracking.local import run_folder_name
from soi_mlflow.tracking.trace_files import cached_trace_files, list_traces
from soi_mlflow.tracking.trace_format import open_trace

pytestmark = pytest.mark.e2e
BUCKET = "soi-traces"
N = 100_000  # examples an epoch: files of ~0.5 MB, where reading fewer columns shows


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory):
    """moto on 127.0.0.1, an mlflow server (default artifact root on moto's S3, proxied
    artifacts in a local folder) and a byte-counting relay in front of it. The S3 settings
    are in the server's environment and, for this module only, in the test's."""
    import boto3
    from moto.server import ThreadedMotoServer

    folder = tmp_path_factory.mktemp("remote")
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    s3_env = {
        "MLFLOW_S3_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_SHARED_CREDENTIALS_FILE": str(folder / "no-credentials"),
        "AWS_CONFIG_FILE": str(folder / "no-config"),
    }
    server = MlflowServer(folder, env=s3_env)
    server.cmd += ["--default-artifact-root", f"s3://{BUCKET}/mlflow"]
    with pytest.MonkeyPatch.context() as mp:
        for name, value in s3_env.items():
            mp.setenv(name, value)
        boto3.client("s3", endpoint_url=s3_env["MLFLOW_S3_ENDPOINT_URL"]).create_bucket(
            Bucket=BUCKET
        )
        server.start()
        proxy = ByteCountingProxy(server.port)
        try:
            yield {"server": server, "proxy": proxy, "written": folder / "written"}
        finally:
            proxy.close()
            server.stop()
            moto.stop()


def _fresh_run(servers, uri: str, experiment: str, location: str | None, name: str, ranks=1):
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    exp = found.experiment_id if found else client.create_experiment(experiment, location)
    folder = write_traces(servers["written"] / name, n=N, ranks=ranks)
    return log_traced_run(client, exp, folder, name), folder


def _no_cache_copy(uri: str, run_id: str) -> bool:
    return not (cache_for(uri).root / run_folder_name(run_id) / "traces").exists()


def _cache_read(uri: str, run_id: str) -> TraceMatrix:
    """The same run read the old way: downloaded into the cache, then read locally."""
    cache = cache_for(uri)
    found = cached_trace_files(cache, run_id, "train", list_traces(cache.client, run_id, "train"))
    return TraceMatrix.from_files(found.paths)


def _dataset_read(found) -> pd.DataFrame:
    """Two columns of every file through ``pyarrow.dataset``, as docs/analysis.md shows."""
    import pyarrow.dataset as ds

    table = ds.dataset(found.paths, filesystem=found.filesystem, format="parquet")
    return table.to_table(columns=["example_id", "p_gold"]).to_pandas()


def _column_bytes(path: Path, column: str) -> int:
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    index = meta.schema.names.index(column)
    return sum(
        meta.row_group(g).column(index).total_compressed_size for g in range(meta.num_row_groups)
    )


def _trace_gets(log: str) -> list[str]:
    """Status codes of the server's GETs of trace files in ``log``."""
    return re.findall(
        r'"GET /api/2\.0/mlflow-artifacts/artifacts/\S*traces/train/\S* HTTP/[\d.]+" (\d+)', log
    )


@pytest.mark.parametrize("ranks", [1, 2])
def test_an_artifact_server_is_read_with_range_requests(servers, ranks) -> None:
    proxy, server = servers["proxy"], servers["server"]
    uri = proxy.uri
    run_id, folder = _fresh_run(
        servers, uri, "http", "mlflow-artifacts:/http", f"http-{ranks}", ranks
    )
    found = trace_files(run_id, "train", uri)
    assert found.source == "http" and len(found.paths) == 3 * ranks
    assert all(p.startswith(f"{uri}/api/2.0/mlflow-artifacts/artifacts/") for p in found.paths)
    whole = sum(f.stat().st_size for f in folder.rglob("*.parquet"))
    frame, tm, table = reference(folder)

    log_start = len(server.log())
    proxy.reset()
    read = trace_matrix(run_id, "train", uri)
    matrix_bytes = proxy.received
    proxy.reset()
    for path in found.paths:
        with open_trace(path, found.filesystem) as pf:
            pf.read(columns=["gold"])
    column_bytes = proxy.received
    statuses = _trace_gets(server.log()[log_start:])
    print(f"\nwhole files {whole} B, matrix read {matrix_bytes} B, 'gold' {column_bytes} B")

    assert statuses and set(statuses) == {"206"}  # range requests only, never a whole file
    # step, task, loss and margin are not fetched: the matrix's columns, each file's
    # footer read and HTTP headers, twice (the members are read in a second pass)
    needed = ("example_id", "gold", "pred", "p_gold", "member")
    files = local_files(folder)
    wanted = sum(_column_bytes(f, c) for f in files for c in needed)
    print(f"matrix columns {wanted} B")
    assert matrix_bytes <= wanted + 2 * 68 * 1024 * len(files)
    # one column: its chunk, pyarrow's footer read (the last 64 KiB) and HTTP headers
    assert column_bytes <= sum(_column_bytes(f, "gold") + 68 * 1024 for f in local_files(folder))
    assert column_bytes < 0.35 * whole
    assert_same_matrix(read, tm)
    assert load_traces(run_id, "train", uri).equals(frame)
    assert _dataset_read(found).equals(frame[["example_id", "p_gold"]])
    assert_same_table(soi_table(run_id, "train", tracking_uri=uri), table)
    assert _no_cache_copy(uri, run_id)
    assert_same_matrix(_cache_read(uri, run_id), read)


def test_an_s3_artifact_root_is_read_through_pyarrows_s3_filesystem(servers) -> None:
    uri = servers["server"].uri
    run_id, folder = _fresh_run(servers, uri, "s3", None, "s3")
    assert MlflowClient(uri).get_run(run_id).info.artifact_uri.startswith(f"s3://{BUCKET}/mlflow/")
    found = trace_files(run_id, "train", uri)
    assert found.source == "s3"
    assert found.paths[0].startswith(f"{BUCKET}/mlflow/")
    frame, tm, table = reference(folder)
    assert_same_matrix(trace_matrix(run_id, "train", uri), tm)
    assert load_traces(run_id, "train", uri).equals(frame)
    assert _dataset_read(found).equals(frame[["example_id", "p_gold"]])
    assert_same_table(soi_table(run_id, "train", tracking_uri=uri), table)
    assert _no_cache_copy(uri, run_id)
    assert_same_matrix(_cache_read(uri, run_id), tm)


def test_an_s3_root_pyarrow_cannot_reach_as_asked_falls_back_to_the_cache(
    servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unverified TLS (``MLFLOW_S3_IGNORE_TLS``) is MLflow's to honour: the cache is used."""
    uri = servers["server"].uri
    run_id, folder = _fresh_run(servers, uri, "s3", None, "s3-tls")
    monkeypatch.setenv("MLFLOW_S3_IGNORE_TLS", "true")
    found = trace_files(run_id, "train", uri)
    assert found.source == "cache"
    assert all(Path(p).is_relative_to(cache_for(uri).root) for p in found.paths)
    assert_same_matrix(trace_matrix(run_id, "train", uri), reference(folder)[1])
