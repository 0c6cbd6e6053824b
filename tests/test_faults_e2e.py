"""Fault injection: kills, outages and failed uploads lose nothing, and a disturbed run
ends up equal to an undisturbed one with the same seed (every epoch's trace once, the
same analysis). Prints a one-line summary at the end (docs/reliability.md quotes it)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from faulthelp import (
    SUMMARY,
    assert_same_traces,
    at_gate,
    close_gate,
    metric_history,
    same_analysis,
    start_training,
    wait_for,
)
from mlflow import MlflowClient
from servers import MlflowServer
from tracehelp import scratch_store, small_config

from soi_mlflow import cli
from soi_mlflow.tracking.local import run_folder
from soi_mlflow.tracking.trace_format import read_metadata, read_trace
from soi_mlflow.training import train

pytestmark = pytest.mark.e2e
EPOCHS = 6


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with scratch_store(tmp_path_factory, "faults") as uri:
        yield uri


@pytest.fixture(scope="module")
def baseline(store) -> str:
    """The undisturbed run every disturbed one must equal, trained in a child process like
    the disturbed runs start (the pytest process's own state is not that of a fresh one)."""
    child = start_training(store, Path.cwd(), dict(os.environ), epochs=EPOCHS)
    out, _ = child.communicate(timeout=300)
    assert child.returncode == 0, out[-3000:]
    return out.split("RUN ")[-1].split()[0]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real ``mlflow server`` the tests stop and start again (same port, same store)."""
    folder = tmp_path_factory.mktemp("faults-server")
    server = MlflowServer(folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _splits(uri: str, run_id: str) -> list[str]:
    return sorted(Path(a.path).name for a in MlflowClient(uri).list_artifacts(run_id, "traces"))


def _check_equal(
    uri: str, baseline: str, run_id: str, tmp_path: Path, run_uri: str | None = None
) -> None:
    """Every epoch once, every trace value and metric bit-equal to the undisturbed run's,
    before and after the resume point (docs/reliability.md: the determinism guarantee).
    ``run_id`` lives in ``run_uri`` if given."""
    run_uri = run_uri or uri
    splits = _splits(uri, baseline)
    assert _splits(run_uri, run_id) == splits
    SUMMARY["rows"] += assert_same_traces(
        uri, baseline, run_id, splits, EPOCHS, tmp_path, exact_until=EPOCHS, uri_b=run_uri
    )
    for key in ("train/loss", "val/books/acc"):
        ours, theirs = metric_history(run_uri, run_id, key), metric_history(uri, baseline, key)
        assert [s for s, _ in ours] == list(range(EPOCHS)) == [s for s, _ in theirs]
        assert ours == theirs
    SUMMARY["recovered"] += 1


def test_sigkill_mid_epoch_then_resume(store, baseline, tmp_path):
    """SIGKILL while epoch 3 of 6 trains (held before its second batch, so the kill lands
    there however fast or slow the machine), then ``train(resume=run id)``: the same run
    finishes with every epoch once, bit-equal to the undisturbed run."""
    import torch

    from soi_mlflow.tracking.local import checkpoint_path

    cwd = Path.cwd()
    gate = close_gate(tmp_path / "gates", 3, batch=1)
    child = start_training(store, cwd, dict(os.environ), tmp_path / "gates", epochs=EPOCHS)
    try:
        at_gate(gate, child)
        found = wait_for(  # the epochs before the held one are written (their upload may lag)
            lambda: [
                p
                for p in cwd.glob("mlruns/*/*/artifacts/traces/train/epoch=002.parquet")
                if baseline not in str(p)
            ],
            120,
            "epoch 3's trace",
            child,
        )
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    SUMMARY["faults"] += 1
    run_id = found[0].parents[3].name
    client = MlflowClient(store)
    assert client.get_run(run_id).info.status == "RUNNING"  # SIGKILL: nothing could end it
    resumed_at = torch.load(checkpoint_path(run_id), weights_only=True)["epoch"] + 1
    assert resumed_at == 3
    result = train(small_config(store, epochs=EPOCHS, resume=run_id))
    assert result.run_id == run_id
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["soi.resumed"] == "1"
    _check_equal(store, baseline, run_id, tmp_path)


def _server_run(server: MlflowServer, epoch: int, proc, run_folder_count: int) -> Path:
    """The artifact root (``artifacts/<experiment>/<run id>/artifacts``), in the server's
    store, of the newest run, once epoch ``epoch`` is in it."""
    pattern = f"artifacts/*/*/artifacts/traces/train/epoch={epoch:03d}.parquet"

    def found() -> list[Path]:
        files = sorted(server.folder.glob(pattern), key=lambda p: p.stat().st_mtime)
        return files if len(files) > run_folder_count else []

    return wait_for(found, 60, f"epoch {epoch}", proc)[-1].parents[2]


def _no_http_retries() -> dict[str, str]:
    """The child's environment without MLflow's own HTTP retries: what gets through after
    a failure is the spool's doing (and the failures cost no back-off time)."""
    return {**os.environ, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}


def _manifest(run_id: str) -> list[dict]:
    path = run_folder(run_id) / "spool" / "manifest.jsonl"
    if not path.exists():  # everything sent
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def _finish(proc) -> str:
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    return out


def test_server_outage_and_a_failed_upload_lose_nothing(store, baseline, server, tmp_path):
    """One training against a real server: (b) the upload of epoch 1's train trace fails
    for real (the server's artifact store has a folder where that file goes) and is sent
    again from the spool; (a) the server is stopped for epochs 2-3 and started again. The
    run ends FINISHED with every epoch once, bit-equal to the undisturbed run, and the
    same analysis."""
    gates = tmp_path / "gates"
    first, second = close_gate(gates, 1), close_gate(gates, 4)
    runs = len(list(server.folder.glob("artifacts/*/*")))
    child = start_training(server.uri, tmp_path, _no_http_retries(), gates, epochs=EPOCHS)
    try:
        at_gate(first, child)
        artifacts = _server_run(server, 0, child, runs)
        run_id = artifacts.parent.name
        blocker = artifacts / "traces" / "train" / "epoch=001.parquet"
        blocker.mkdir()  # the server cannot write this one file (even as root)
        first.unlink()
        wait_for(
            lambda: any("failed" in r for r in _manifest(run_id)), 120, "the failed upload", child
        )
        SUMMARY["faults"] += 1
        refused = 'traces/train/epoch%3D001.parquet HTTP/1.1" 500'  # the server's own answer
        wait_for(lambda: refused in server.log(), 60, "the server's error", child)
        blocker.rmdir()
        # (a) the server goes away while epochs 2 and 3 train
        wait_for(
            lambda: (artifacts / "traces/validation/epoch=001.parquet").exists(),
            120,
            "the retried upload",
            child,
        )
        server.stop()
        SUMMARY["faults"] += 1
        at_gate(second, child)
        waiting = {(r.get("path"), r.get("file", "").rsplit("/", 1)[-1]) for r in _manifest(run_id)}
        assert ("traces/train", "epoch=003.parquet") in waiting  # kept while the server is away
        server.start()
        second.unlink()
        out = _finish(child)
    finally:
        if child.poll() is None:
            child.kill()
    assert "INCOMPLETE" not in out
    assert out.split("RUN ")[-1].split()[0] == run_id
    assert MlflowClient(server.uri).get_run(run_id).info.status == "FINISHED"
    assert not (run_folder(run_id) / "spool").exists()
    _check_equal(store, baseline, run_id, tmp_path, run_uri=server.uri)
    same_analysis(store, baseline, run_id, uri_b=server.uri)


def test_spool_survives_sigkill_during_an_outage_and_sync_sends_it(
    store, baseline, server, tmp_path
):
    """(c) The server goes away after epoch 1; the training is SIGKILLed after epoch 3
    with epochs 2-3 only in the spool. The spool reads back as plain Parquet and JSON;
    once the server is back, ``soi-mlflow sync`` sends it, and a resume ends the run,
    bit-equal to the undisturbed run, with the same analysis."""
    import torch

    from soi_mlflow.tracking.local import checkpoint_path

    gates = tmp_path / "gates"
    first, second = close_gate(gates, 2), close_gate(gates, 4)
    runs = len(list(server.folder.glob("artifacts/*/*")))
    child = start_training(server.uri, tmp_path, _no_http_retries(), gates, epochs=EPOCHS)
    try:
        at_gate(first, child)
        run_id = _server_run(server, 1, child, runs).parent.name
        server.stop()
        first.unlink()
        at_gate(second, child)  # epochs 2 and 3 done, their checkpoint written
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        SUMMARY["faults"] += 2
    finally:
        if child.poll() is None:
            child.kill()
    # the spool read back: JSON lines naming schema-v1 Parquet files of epochs 2 and 3
    spool = run_folder(run_id) / "spool"
    files = [r for r in _manifest(run_id) if r.get("kind") == "artifact"]
    epochs = sorted(read_metadata(spool / r["file"])["epoch"] for r in files)
    assert epochs == sorted([2, 3] * len(_splits(store, baseline)))
    assert all(len(read_trace(spool / r["file"])) for r in files)
    server.start()
    client = MlflowClient(server.uri)
    assert client.get_run(run_id).info.status == "RUNNING"  # SIGKILL: nothing ended it
    assert len(_splits_files(client, run_id)) == 2
    assert cli.main(["sync", "--run-id", run_id]) == 0
    assert len(_splits_files(client, run_id)) == 4
    assert not spool.exists()
    resumed_at = torch.load(checkpoint_path(run_id), weights_only=True)["epoch"] + 1
    assert resumed_at == 4
    result = train(small_config(server.uri, epochs=EPOCHS, resume=run_id))
    assert result.run_id == run_id
    assert client.get_run(run_id).info.status == "FINISHED"
    _check_equal(store, baseline, run_id, tmp_path, run_uri=server.uri)
    same_analysis(store, baseline, run_id, uri_b=server.uri)


def _splits_files(client: MlflowClient, run_id: str) -> list[str]:
    return [a.path for a in client.list_artifacts(run_id, "traces/train")]
