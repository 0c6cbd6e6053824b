"""Fault injection: kills, outages and failed uploads lose nothing, and a disturbed run
ends up equal to an undisturbed one with the same seed (every epoch's trace once, the
same analysis). Prints a one-line summary at the end (docs/reliability.md quotes it)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from faulthelp import assert_same_traces, metric_history, start_training, wait_for
from mlflow import MlflowClient
from tracehelp import scratch_store, small_config

from soi_mlflow.training import train

pytestmark = pytest.mark.e2e
EPOCHS = 6
SUMMARY = {"faults": 0, "recovered": 0, "rows": 0, "lost": 0}


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


@pytest.fixture(scope="module", autouse=True)
def summary():
    yield
    print(
        f"\nfault injection: {SUMMARY['faults']} faults injected, {SUMMARY['recovered']} runs "
        f"recovered, {SUMMARY['rows']} trace rows compared, rows lost: {SUMMARY['lost']}"
    )


def _splits(uri: str, run_id: str) -> list[str]:
    return sorted(Path(a.path).name for a in MlflowClient(uri).list_artifacts(run_id, "traces"))


def _check_equal(uri: str, baseline: str, run_id: str, tmp_path: Path) -> None:
    """Every epoch once, every trace value and metric bit-equal to the undisturbed run's,
    before and after the resume point (docs/reliability.md: the determinism guarantee)."""
    splits = _splits(uri, baseline)
    assert _splits(uri, run_id) == splits
    SUMMARY["rows"] += assert_same_traces(
        uri, baseline, run_id, splits, EPOCHS, tmp_path, exact_until=EPOCHS
    )
    for key in ("train/loss", "val/books/acc"):
        ours, theirs = metric_history(uri, run_id, key), metric_history(uri, baseline, key)
        assert [s for s, _ in ours] == list(range(EPOCHS)) == [s for s, _ in theirs]
        assert ours == theirs
    SUMMARY["recovered"] += 1


def test_sigkill_mid_epoch_then_resume(store, baseline, tmp_path):
    """SIGKILL while epoch 3 of 6 trains, then ``train(resume=run id)``: the same run
    finishes with every epoch once, bit-equal to the undisturbed run."""
    import torch

    from soi_mlflow.tracking.local import checkpoint_path

    cwd = Path.cwd()
    child = start_training(store, cwd, dict(os.environ), epochs=EPOCHS)
    try:
        found = wait_for(
            lambda: [
                p
                for p in cwd.glob("mlruns/*/*/artifacts/traces/train/epoch=001.parquet")
                if baseline not in str(p)
            ],
            120,
            "epoch 2's trace",
            child,
        )
        # the trace of epoch 1 can be uploaded before epoch 1's checkpoint is renamed in
        ckpt = checkpoint_path(found[0].parents[3].name)
        wait_for(
            lambda: ckpt.is_file() and torch.load(ckpt, weights_only=True)["epoch"] >= 1,
            120,
            "epoch 2's checkpoint",
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
    assert 2 <= resumed_at < EPOCHS
    result = train(small_config(store, epochs=EPOCHS, resume=run_id))
    assert result.run_id == run_id
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["soi.resumed"] == "1"
    _check_equal(store, baseline, run_id, tmp_path)
