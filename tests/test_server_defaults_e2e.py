"""Commands as teams run them: every option at its default (the MLflow Model logged),
against a real ``mlflow server`` on 127.0.0.1 with proxied artifacts, named only by
``MLFLOW_TRACKING_URI`` (the command line) or set by ``mlflow run`` (the entry points).
Each ends with every run FINISHED in that server and no ``mlflow.db`` anywhere else.

Set-up (a), a SQLite store outside the working directory, is every other command-line
test's (``run_cli`` fails on a stray ``mlflow.db``) and the Python entry points'
(``test_process_state_e2e.py``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient
from servers import REPO, mlflow_server
from tracehelp import cli_env, run_cli

pytestmark = pytest.mark.e2e
SMALL = ["--epochs", "1", "--max-examples", "24", "--eval-max-examples", "16"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with mlflow_server(tmp_path_factory.mktemp("server")) as uri:
        yield uri


@pytest.fixture
def work(tmp_path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def _finished_with_models(uri: str, experiment: str) -> list:
    """Every run of ``experiment`` in the server: FINISHED, each training run with its
    logged MLflow Model. Returns the runs."""
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"experiment {experiment!r} is not in {uri}"
    runs = client.search_runs([found.experiment_id])
    assert runs and all(r.info.status == "FINISHED" for r in runs), [
        (r.info.run_name, r.info.status) for r in runs
    ]
    trained = [r for r in runs if "soi.training_key" in r.data.tags]
    assert trained and all(r.outputs.model_outputs for r in trained)
    assert all(r.info.artifact_uri.startswith("mlflow-artifacts:") for r in runs)
    return runs


def test_train_and_compare_through_the_variable(server, work) -> None:
    run_cli(["train", "--members", "books", "--ood", "", *SMALL, "--experiment", "b-train"],
            server, work)
    assert len(_finished_with_models(server, "b-train")) == 1
    args = ["compare", "--members", "books,movies", "--ood", "", *SMALL, "--experiment", "b-cmp"]
    run_cli(args, server, work)
    assert len(_finished_with_models(server, "b-cmp")) == 4  # the parent and 3 children
    assert not list(work.rglob("mlflow.db"))


ENTRY_POINTS = {
    "compare": ["members=books,movies"],
    "two_stage": ["members=books", "stage2_epochs=1", "stage2_bottom=confidence:0.5"],
    "transfer": ["axis=task", "members=sentiment,entailment"],
    "learning_curve": ["axis=task", "target=entailment", "aux=sentiment", "sizes=8,16,24"],
}


@pytest.mark.timeout(900)  # the child's own 600 s timeout fires first, with its output
@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_mlflow_run_entry_point_against_the_server(server, work, entry) -> None:
    """``mlflow run`` sets ``MLFLOW_TRACKING_URI`` and ``MLFLOW_RUN_ID`` for the study,
    which runs in the project folder: nothing may appear there or in the caller's."""
    local_db = REPO / "mlflow.db"
    before = local_db.stat().st_mtime_ns if local_db.exists() else None
    params = ["ood=", "epochs=1", "max_examples=24", "eval_max_examples=16", "progress=false"]
    cmd = [sys.executable, "-m", "mlflow", "run", str(REPO), "-e", entry,
           "--env-manager", "local", "--experiment-name", f"c-{entry}"]
    for p in [*params, *ENTRY_POINTS[entry]]:
        cmd += ["-P", p]
    out = subprocess.run(cmd, capture_output=True, text=True, env=cli_env(server), cwd=work,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    runs = _finished_with_models(server, f"c-{entry}")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and parents[0].data.tags.get("soi.study") == entry
    assert len(runs) > 2  # the study's children, nested under the run MLflow created
    assert not list(work.rglob("mlflow.db"))
    after = local_db.stat().st_mtime_ns if local_db.exists() else None
    assert after == before, f"{local_db} was written: the study used MLflow's default store"
