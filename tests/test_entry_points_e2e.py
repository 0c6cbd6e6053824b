"""Every entry point of MLproject runs on its defaults: ``mlflow run PROJECT -e NAME
--env-manager local`` with no parameter that chooses *what* runs (members, axis, stage-2
selection, the runs to analyse) except those MLproject declares without a default, so
that MLflow names them (``learning_curve``'s ``target`` and ``aux``). Only *how much* is
trained is made smaller (epochs, examples, seeds, sizes): on the defaults' sizes the
studies take minutes each on 2 cores.

The project is a copy of this repository's MLproject in a temporary folder, so what the
runs write next to themselves (``mlruns/``) stays out of the repository; the store is
one SQLite database for the module, outside it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient
from tracehelp import cli_env, scratch_store

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[1]
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
    "views": [*SMALL[:2], "eval_max_examples=8", "seeds=2", "sizes=4,8,12", "affinity_interval=1"],
    "sync": [],
}
SAME_AS = {"demo": "main"}  # one command: run once


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("project")
    for name in ("MLproject", "python_env.yaml"):
        shutil.copy(REPO / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def uri(tmp_path_factory):
    with scratch_store(tmp_path_factory, "entry-points") as store:
        MlflowClient(store).search_experiments()  # the store exists before mlflow run
        yield store


def test_every_entry_point_is_run_here() -> None:
    assert set(ENTRY_POINTS) == set(GIVEN) | set(SAME_AS)
    for name, same in SAME_AS.items():
        assert ENTRY_POINTS[name] == ENTRY_POINTS[same]
    for name, given in GIVEN.items():
        declared = ENTRY_POINTS[name].get("parameters") or {}
        required = {p for p, spec in declared.items() if "default" not in spec}
        assert required <= {g.split("=")[0] for g in given}, name


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", list(GIVEN))
def test_an_entry_point_runs_on_its_defaults(project, uri, name) -> None:
    cmd = [sys.executable, "-m", "mlflow", "run", str(project), "-e", name,
           "--env-manager", "local", "--experiment-name", EXPERIMENT]  # fmt: skip
    for param in GIVEN[name]:
        cmd += ["-P", param]
    out = subprocess.run(
        cmd, capture_output=True, text=True, env=cli_env(uri), cwd=project, timeout=600
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(EXPERIMENT).experiment_id
    runs = client.search_runs([experiment], "tags.`mlflow.project.entryPoint` = '" + name + "'")
    assert runs and runs[0].info.status == "FINISHED", out.stderr[-3000:]
    parent = runs[0].data
    if name == "two_stage":  # the documented default selection
        assert parent.params["selection"] == "subsets:forgettable,never_learned", parent.params
    if name == "views":  # the built-in suite's task axis, all three of its members
        assert parent.tags["soi.axis"] == "task", parent.tags
        assert parent.tags["soi.members"] == "entailment,paraphrase,sentiment", parent.tags
