"""The spool against a real ``mlflow server`` that goes away and comes back: waiting
entries are sent on the writer thread's timer (no epoch end or close needed), and the
INCOMPLETE message counts what ``soi-mlflow sync`` then sends."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
from faulthelp import at_gate, close_gate, start_training, wait_for
from mlflow import MlflowClient
from servers import MlflowServer

from soi_mlflow import cli
from soi_mlflow.tracking.local import run_folder
from soi_mlflow.tracking.recorder import TraceRecorder
from soi_mlflow.tracking.spool import Spool
from soi_mlflow.tracking.spool_writer import RETRY_ENV

pytestmark = pytest.mark.e2e
RETRY_S = 1.0  # the timer of these tests (the default is spool_writer.RETRY_S)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real ``mlflow server`` the tests stop and start again (same port, same store)."""
    server = MlflowServer(tmp_path_factory.mktemp("spool-server"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _epoch(rec: TraceRecorder, epoch: int) -> None:
    logits = np.array([[2.0, -1.0], [0.5, 0.2], [-1.0, 1.0]]) * (epoch + 1)
    rec.add("train", [0, 1, 2], logits, np.array([0, 1, 1]))
    rec.end_epoch()
    rec.flush()


def test_a_restarted_server_gets_the_spool_without_another_write(server, monkeypatch):
    """The server stops after epoch 0 and epoch 1's file and metrics wait in the spool;
    it starts again and, with no epoch end and no close, they arrive (printed: how long
    after; about the timer's interval and a send's time, on a machine not busy)."""
    monkeypatch.setenv(RETRY_ENV, str(RETRY_S))
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # the spool's doing only
    rec = TraceRecorder(tracking_uri=server.uri, label_names=["neg", "pos"])
    try:
        _epoch(rec, 0)
        assert rec.unsent.pending == 0
        assert _threads().count("soi-trace") == 1  # the timer runs on the writer thread
        server.stop()
        _epoch(rec, 1)
        assert rec.unsent.pending == 2  # the trace file and the metric batch
        spool = run_folder(rec.run_id) / "spool"
        # the timer ran, its tries found no server: still waiting
        wait_for(lambda: rec._executor.retries >= 2, 60, "two timer sends")
        assert spool.is_dir() and rec.unsent.pending == 2
        server.start()
        up = time.monotonic()
        wait_for(lambda: not spool.exists(), 60, "the timer's send")  # nothing else sends
        took = time.monotonic() - up
        print(f"spooled entries arrived {took:.2f} s after the server answered again")
        client = MlflowClient(server.uri)
        files = [a.path for a in client.list_artifacts(rec.run_id, "traces/train")]
        assert files == ["traces/train/epoch=000.parquet", "traces/train/epoch=001.parquet"]
        steps = [m.step for m in client.get_metric_history(rec.run_id, "train/loss")]
        assert sorted(steps) == [0, 1]
        assert rec.unsent.pending == 0
    finally:
        rec.close()
    assert MlflowClient(server.uri).get_run(rec.run_id).info.status == "FINISHED"
    assert not [t for t in _threads() if t.startswith("soi-trace")]  # the writer stopped


def _threads() -> list[str]:
    import threading

    return [t.name for t in threading.enumerate()]


def test_incomplete_counts_what_sync_sends(server, tmp_path, capsys):
    """The built-in trainer with ``--log-checkpoint``; the server stops after epoch 0 and
    is still down when training ends. The INCOMPLETE line counts every spooled entry, the
    run's end and the checkpoint's files included: as many as ``soi-mlflow sync`` sends."""
    gates = tmp_path / "gates"
    gate = close_gate(gates, 1)
    env = {**os.environ, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    child = start_training(server.uri, tmp_path, env, gates, epochs=2, log_checkpoint=True)
    try:
        at_gate(gate, child)
        server.stop()
        gate.unlink()
        out, _ = child.communicate(timeout=300)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, out[-3000:]
    run_id = out.split("RUN ")[-1].split()[0]
    said = re.findall(rf"run {run_id} is INCOMPLETE in \S+ (\d+) spooled entries", out)
    assert len(said) == 1, out[-3000:]  # said once, at the very end
    waiting = Spool.of_run(run_id).pending()
    assert waiting[-1]["kind"] == "end"
    assert int(said[0]) == len(waiting)
    server.start()
    capsys.readouterr()
    assert cli.main(["sync", "--run-id", run_id]) == 0
    sent = re.search(rf"run {run_id}: sent (\d+) of (\d+) spooled entries", capsys.readouterr().out)
    assert sent and sent[1] == sent[2] == said[0]
    assert MlflowClient(server.uri).get_run(run_id).info.status == "FINISHED"
    assert not Path(run_folder(run_id) / "spool").exists()


def test_a_study_parent_ended_in_an_outage_is_sent_by_sync(server, capsys):
    """Two study parents end while the server is down, one FINISHED and one FAILED: each
    end waits in the parent's spool, as a training run's does, and ``sync`` sends it."""
    from soi_mlflow.studies.parent import study_parent
    from soi_mlflow.training import TrainConfig

    base = TrainConfig(tracking_uri=server.uri)
    try:
        with (
            pytest.raises(RuntimeError),
            study_parent(base, "compare", "failed", {}) as failed,
        ):
            with study_parent(base, "compare", "finished", {}) as finished:
                server.stop()
            raise RuntimeError("a child failed\nits traceback")
        ids = [finished.run_id, failed.run_id]
        err = capsys.readouterr().err
        for run_id in ids:
            assert f"run {run_id} is INCOMPLETE" in err
            assert Spool.of_run(run_id).pending()[-1]["kind"] == "end"
    finally:
        if server.proc is None:
            server.start()
    for run_id in ids:
        assert cli.main(["sync", "--run-id", run_id]) == 0
    client = MlflowClient(server.uri)
    done, broken = (client.get_run(r) for r in ids)
    assert done.info.status == "FINISHED" and "compute/wall_seconds" in done.data.metrics
    assert broken.info.status == "FAILED"
    assert broken.data.tags["soi.end_reason"] == "RuntimeError: a child failed"
