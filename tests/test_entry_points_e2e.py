"""Every entry point of MLproject runs on its defaults, as teams run it: ``mlflow run
PROJECT -e NAME --env-manager local`` against a real ``mlflow server`` on 127.0.0.1 with
proxied artifacts, named only by ``MLFLOW_TRACKING_URI`` (``mlflow run`` hands it and
``MLFLOW_RUN_ID`` to the command). No parameter chooses *what* runs (members, axis,
stage-2 selection, the runs to analyse) except those MLproject declares without a
default, so that MLflow names them (``learning_curve``'s ``target`` and ``aux``). Only
*how much* is trained is made smaller (epochs, examples, seeds, sizes): on the defaults'
sizes the studies take minutes each on 2 cores. Each ends with every run FINISHED in the
server (each training with its logged MLflow Model), a study's runs nested under the run
MLflow created (its parent, tagged with the study's kind), and no ``mlflow.db`` written
in the project folder, where the command runs, or in the repository.

``views`` is the one entry point not started here: its smallest study is 68 trainings
(3 members x 2 seeds x 3 sizes: ~4 minutes of 2 cores through ``mlflow run``), and
MLproject gives it no parameter that chooses what runs (no members, no axis), so its
command line is the defaults' by construction (``test_mlproject`` keeps MLproject the
one the settings write). Its defaults are run in process instead:
``tests/test_executor_ray.py::test_the_views_study_on_ray_runs_its_defaults_and_re_analyses_the_same``
parses the ``views`` command line with no axis and no members (only sizes, epochs and
examples smaller), asserts the task axis and its three members, and runs that study on
Ray; ``tests/test_defaults.py`` checks the parse itself. ``recommend``
needs a transfer study's parent run id (``parents``, declared without a default), which
no static parameter here can name: ``tests/test_recommend_e2e.py`` runs its command line
on a tiny transfer study, ``--verify`` included.

The project is a copy of this repository's MLproject in a temporary folder, so what the
runs write next to themselves (``mlruns/``) stays out of the repository. The SQLite store
through ``mlflow run`` is ``tests/test_training_e2e.py``'s. The last test here runs the
command line with no ``mlflow run`` around it against the same server, named only by the
variable: the command opens its own runs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient
from servers import REPO, mlflow_server
from tracehelp import cli_env, run_cli_here, trace_files

pytestmark = pytest.mark.e2e
ENTRY_POINTS = yaml.safe_load((REPO / "MLproject").read_text())["entry_points"]
EXPERIMENT = "entry-points"
SMALL = ["epochs=1", "max_examples=24", "eval_max_examples=16", "progress=false"]
# Per entry point: the parameters given. Each is a size, or declared without a default.
GIVEN = {
    "main": ["epochs=1", "seeds=1"],  # the demo: its examples are its own
    "preview": [],
    "train": SMALL,
    "compare": SMALL,
    "analyze": [],  # the traced runs of this mlflow run's experiment: those above
    "two_stage": [*SMALL, "stage2_epochs=1"],
    "transfer": SMALL,
    "noise_benchmark": ["train_size=24", "eval_size=16", "seeds=1", "epochs=1", "cl_folds=0"],
    "learning_curve": [*SMALL, "target=books", "aux=movies", "sizes=8,16,24", "seeds=1"],
    "sync": [],
}
SAME_AS = {"demo": "main"}  # one command: run once
RUN_ELSEWHERE = {"views", "recommend"}  # run in other tests (the docstring says where)
# The study each entry point runs: its kind, tagged on the run MLflow created (the
# parent), and the trainings nested under it on the parameters above
STUDY = {
    "main": ("compare", 4),  # 3 members alone and together, 1 seed
    "compare": ("compare", 3),  # books, movies alone and together
    "two_stage": ("two_stage", 5),  # stage 1, books and movies alone, stage 2, its control
    "transfer": ("transfer", 3),  # books, movies alone and together
    "noise_benchmark": ("noise_benchmark", 1),  # 1 seed, no cross-validation folds
    "learning_curve": ("learning_curve", 6),  # 3 sizes alone and with the auxiliary data
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with mlflow_server(tmp_path_factory.mktemp("server")) as uri:
        yield uri


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("project")
    for name in ("MLproject", "python_env.yaml"):
        shutil.copy(REPO / name, folder / name)
    return folder


def test_every_entry_point_is_run_here() -> None:
    assert set(ENTRY_POINTS) == set(GIVEN) | set(SAME_AS) | RUN_ELSEWHERE
    for name, same in SAME_AS.items():
        assert ENTRY_POINTS[name] == ENTRY_POINTS[same]
    for name, given in GIVEN.items():
        declared = ENTRY_POINTS[name].get("parameters") or {}
        required = {p for p, spec in declared.items() if "default" not in spec}
        assert required <= {g.split("=")[0] for g in given}, name
    for name in RUN_ELSEWHERE:  # nothing in MLproject chooses what it runs
        assert not {"members", "axis"} & set(ENTRY_POINTS[name]["parameters"])


def _ids(runs: list) -> list[str]:
    return [r.info.run_id for r in runs]


def _below(client: MlflowClient, root) -> list:
    """Every run nested, at any depth, under ``root``, in any experiment."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    found, todo = [], [root.info.run_id]
    while todo:
        query = f"tags.mlflow.parentRunId = '{todo.pop()}'"
        runs = client.search_runs(experiments, query, max_results=5000)
        found += runs
        todo += [r.info.run_id for r in runs]
    return found


@pytest.mark.timeout(900)  # the child's own 600 s timeout fires first, with its output
@pytest.mark.parametrize("name", list(GIVEN))
def test_an_entry_point_runs_on_its_defaults(server, project, name) -> None:
    local_db = REPO / "mlflow.db"
    before = local_db.stat().st_mtime_ns if local_db.exists() else None
    cmd = [sys.executable, "-m", "mlflow", "run", str(project), "-e", name,
           "--env-manager", "local", "--experiment-name", EXPERIMENT]  # fmt: skip
    for param in GIVEN[name]:
        cmd += ["-P", param]
    out = subprocess.run(
        cmd, capture_output=True, text=True, env=cli_env(server), cwd=project, timeout=600
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    client = MlflowClient(server)
    experiment = client.get_experiment_by_name(EXPERIMENT).experiment_id
    roots = client.search_runs([experiment], f"tags.`mlflow.project.entryPoint` = '{name}'")
    assert len(roots) == 1, [r.info.run_id for r in roots]
    root = roots[0]
    runs = [root, *_below(client, root)]
    assert all(r.info.status == "FINISHED" for r in runs), [
        (r.info.run_name, r.info.status) for r in runs
    ]
    assert all(r.info.artifact_uri.startswith("mlflow-artifacts:") for r in runs)
    trained = [r for r in runs if "soi.training_key" in r.data.tags]
    assert all(r.outputs.model_outputs for r in trained), [r.info.run_name for r in trained]
    tags = root.data.tags
    if name in STUDY:  # the study's parent is the run MLflow created; its children below
        kind, trainings = STUDY[name]
        assert tags.get("soi.study") == kind, tags
        assert len(trained) == trainings and root.info.run_id not in _ids(trained)
    if name == "train":  # the training is the run MLflow created, on the default members
        assert _ids(trained) == [root.info.run_id] and tags["soi.members"] == "books,movies", tags
        assert trace_files(server, root.info.run_id, "train") == ["traces/train/epoch=000.parquet"]
    if name == "two_stage":  # the documented default selection
        assert root.data.params["selection"] == "subsets:forgettable,never_learned"
    assert not list(project.rglob("mlflow.db"))
    after = local_db.stat().st_mtime_ns if local_db.exists() else None
    assert after == before, f"{local_db} was written: the study used MLflow's default store"


def _finished_with_models(uri: str, experiment: str) -> list:
    """Every run of ``experiment`` in the server: FINISHED, each training run with its
    logged MLflow Model, its artifacts proxied by the server. Returns the runs."""
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


def test_train_and_compare_through_the_variable_without_mlflow_run(server, tmp_path) -> None:
    """Commands as teams run them with no ``mlflow run`` around: every option at its
    default (the MLflow Model logged) but the sizes, the server named only by
    ``MLFLOW_TRACKING_URI``, so the command opens its own runs; no ``mlflow.db`` anywhere
    else. Run in this process (``run_cli_here``): the claim is the command's work, and the
    command's own process is the entry points' above."""
    small = ["--epochs", "1", "--max-examples", "24", "--eval-max-examples", "16"]
    work = tmp_path / "work"
    work.mkdir()
    run_cli_here(["train", "--members", "books", "--ood", "", *small, "--experiment", "b-train"],
                 server, work)  # fmt: skip
    assert len(_finished_with_models(server, "b-train")) == 1
    args = ["compare", "--members", "books,movies", "--ood", "", *small, "--experiment", "b-cmp"]
    run_cli_here(args, server, work)
    assert len(_finished_with_models(server, "b-cmp")) == 4  # the parent and 3 children
    assert not list(work.rglob("mlflow.db"))
