"""Commands as teams run them: every option at its default (the MLflow Model logged),
against a real ``mlflow server`` on 127.0.0.1 with proxied artifacts, named only by
``MLFLOW_TRACKING_URI``: the command line with no ``mlflow run`` around it, so the
command opens its own runs (``tests/test_entry_points_e2e.py`` runs every entry point
through ``mlflow run``, which opens the run the command adopts, against such a server).
Each ends with every run FINISHED in that server and no ``mlflow.db`` anywhere else.

Set-up (a), a SQLite store outside the working directory, is every other command-line
test's (``run_cli`` fails on a stray ``mlflow.db``) and the Python entry points'
(``test_process_state_e2e.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient
from servers import mlflow_server
from tracehelp import run_cli

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
    run_cli(
        ["train", "--members", "books", "--ood", "", *SMALL, "--experiment", "b-train"],
        server,
        work,
    )
    assert len(_finished_with_models(server, "b-train")) == 1
    args = ["compare", "--members", "books,movies", "--ood", "", *SMALL, "--experiment", "b-cmp"]
    run_cli(args, server, work)
    assert len(_finished_with_models(server, "b-cmp")) == 4  # the parent and 3 children
    assert not list(work.rglob("mlflow.db"))
