"""End to end: the CLI, `mlflow run`, DDP on CPU, a real server, and a killed run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from faulthelp import at_gate, close_gate, wait_for
from mlflow import MlflowClient
from servers import mlflow_server
from tracehelp import cli_env, load_trace, run_cli, run_cli_here, trace_files

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[1]
SMALL = [
    "--suite",
    "builtin",
    "--axis",
    "source",
    "--epochs",
    "2",
    "--max-examples",
    "60",
    "--batch-size",
    "16",
    "--no-progress",
]
# At most 40 examples of each evaluation split an epoch, where no claim is about their
# size: on the full splits (400 a member) evaluating took ~10-20x the training's time.
# The DDP test keeps them full (its 3 x 400 validation examples, each traced once).
EVAL = ["--eval-max-examples", "40"]


def _only_run(uri: str):
    client = MlflowClient(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments)
    assert len(runs) == 1, [r.info.run_id for r in runs]
    return runs[0]


def test_cli_train_prints_the_run_and_the_ui_command(store, tmp_path: Path) -> None:
    out = run_cli_here(
        ["train", *SMALL, *EVAL, "--members", "books,movies", "--ood", "restaurants"],
        store,
        tmp_path,
    )
    run = _only_run(store)
    assert f"run id: {run.info.run_id}" in out
    assert "mlflow ui --backend-store-uri" in out
    for split in ("train", "validation", "test", "ood"):
        assert len(trace_files(store, run.info.run_id, split)) == 2
    # one training shows its results: analysed by default, the data map named
    assert "analysed: train, validation, test, ood" in out
    assert "data map: html/datamap_train.html" in out
    assert "soi/train/forgotten_frac" in run.data.metrics


def test_mlflow_run_entry_point_logs_into_its_own_run(store, tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "run",
        str(REPO),
        "-e",
        "train",
        "--env-manager",
        "local",
        "--experiment-name",
        "via-mlflow-run",
        "-P",
        "members=books",
        "-P",
        "ood=",
        "-P",
        "epochs=1",
        "-P",
        "max_examples=40",
        "-P",
        "eval_max_examples=40",
    ]
    out = subprocess.run(
        cmd, capture_output=True, text=True, env=cli_env(store), cwd=tmp_path, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    run = _only_run(store)
    client = MlflowClient(store)
    assert client.get_experiment(run.info.experiment_id).name == "via-mlflow-run"
    assert run.data.tags["soi.members"] == "books" and run.info.status == "FINISHED"
    assert trace_files(store, run.info.run_id, "train") == ["traces/train/epoch=000.parquet"]


def test_ddp_on_two_cpu_processes_traces_each_example_once(store, tmp_path: Path) -> None:
    # 3 x 101 = 303 examples: the distributed sampler pads one rank with a duplicate
    args = [
        "train",
        *SMALL,
        "--members",
        "books,movies,electronics",
        "--ood",
        "",
        "--max-examples",
        "101",
        "--devices",
        "2",
        "--strategy",
        "ddp",
        "--accelerator",
        "cpu",
    ]
    out = run_cli(args, store, tmp_path, timeout=400)
    run = _only_run(store)
    assert run.data.params["devices"] == "2" and run.data.params["strategy"] == "ddp"
    assert out.count("analysed: train, validation, test") == 1  # by rank 0 alone
    assert run.data.tags["mlflow.note.content"].count("#### Analysis") == 1
    for path in trace_files(store, run.info.run_id, "train"):
        trace, _ = load_trace(store, run.info.run_id, path)
        assert len(trace) == 303 and trace["example_id"].is_unique
    trace, _ = load_trace(
        store, run.info.run_id, trace_files(store, run.info.run_id, "validation")[-1]
    )
    assert len(trace) == 3 * 400 and trace["example_id"].is_unique


def test_traces_go_through_a_real_tracking_server(tmp_path: Path) -> None:
    with mlflow_server(tmp_path) as uri:
        run_cli_here(
            ["train", *SMALL, *EVAL, "--members", "books", "--ood", "", "--epochs", "1"],
            uri,
            tmp_path,
        )
        run = _only_run(uri)
        assert run.info.artifact_uri.startswith("mlflow-artifacts:")
        trace, meta = load_trace(uri, run.info.run_id, "traces/train/epoch=000.parquet")
        assert len(trace) == 60 and meta["run_id"] == run.info.run_id
    stored = list((tmp_path / "artifacts").rglob("epoch=000.parquet"))
    assert len(stored) == 3  # train, validation, test: proxied into the server's folder


GATED_CLI = """
import sys
sys.path.insert(0, {tests!r})
from faulthelp import add_gates
add_gates({gates!r})
from soi_mlflow.cli.main import main
raise SystemExit(main())
"""


def test_a_killed_run_keeps_the_epochs_already_written(store, tmp_path: Path) -> None:
    """``soi-mlflow train`` SIGKILLed (its process group) while it waits before epoch 3
    of 8 (tests/faulthelp.py's gate): the run keeps epochs 0-2's traces, whole."""
    args = [
        "train",
        *SMALL,
        *EVAL,
        "--members",
        "books",
        "--ood",
        "",
        "--epochs",
        "8",
        "--max-examples",
        "200",
    ]
    client = MlflowClient(store)
    client.search_experiments()  # the store exists before the training opens it: this test
    # is about a killed run, not two processes creating one SQLite schema at once
    gate = close_gate(tmp_path / "gates", 3)
    code = GATED_CLI.format(tests=str(Path(__file__).parent), gates=str(gate.parent))
    log = (tmp_path / "train.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=cli_env(store),
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def written() -> list[str]:
        runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
        return runs and len(trace_files(store, runs[0].info.run_id, "train")) == 3

    try:
        try:
            at_gate(gate, proc, 240)
            wait_for(written, 120, "epochs 0-2's traces", proc)  # their upload may lag
        except AssertionError as exc:
            output = (tmp_path / "train.log").read_text()[-2000:]
            raise AssertionError(f"{exc}\n{output}") from None
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        log.close()
    run = _only_run(store)
    files = trace_files(store, run.info.run_id, "train")
    assert len(files) == 3
    for epoch, path in enumerate(files):
        assert path == f"traces/train/epoch={epoch:03d}.parquet"
        trace, _ = load_trace(store, run.info.run_id, path)
        assert len(trace) == 200 and (trace["epoch"] == epoch).all()
