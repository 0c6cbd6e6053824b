"""End to end: the comparison study, re-analysis from the parent, the notebook."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from nbclient import NotebookClient
from tracehelp import run_cli_here

from soi_mlflow.analysis import find_runs
from soi_mlflow.analysis.runs import cache_for

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = "study-tests"
# Every command evaluates at most 40 examples of each evaluation split (validation, test,
# OOD) an epoch: on the full splits (400 a member) evaluation took ~20x the training's
# time, and no claim here is about an evaluation split's size (the train split's is:
# the notebook's 80 matched, the passes counted). Full evaluation splits are
# tests/test_training_e2e.py's (DDP's 3 x 400) and the entry points' defaults' (demo).
EVAL = ["--eval-max-examples", "40"]


COMPARE = [
    "compare",
    "--suite",
    "builtin",
    "--axis",
    "source",
    "--members",
    "books,movies",
    "--ood",
    "restaurants",
    "--epochs",
    "3",
    "--max-examples",
    "80",
    "--seeds",
    "2",
    "--batch-size",
    "16",
    "--no-progress",
    *EVAL,
]
CURVE = [
    "learning-curve",
    "--axis",
    "task",
    "--target",
    "entailment",
    "--aux",
    "sentiment",
    "--sizes",
    "20,40,80",
    "--max-examples",
    "100",
    "--batch-size",
    "16",
    "--no-progress",
    *EVAL,
]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("study")
    (folder / "store").mkdir()  # not the working directory's default ./mlflow.db
    uri = f"sqlite:///{folder}/store/mlflow.db"
    return uri, folder, run_cli_here([*COMPARE, "--experiment", EXPERIMENT], uri, folder)


def test_compare_makes_a_parent_with_children_figures_and_a_summary(study) -> None:
    uri, folder, stdout = study
    parents = find_runs(EXPERIMENT, tracking_uri=uri, study="compare")
    assert len(parents) == 1
    parent = parents["run_id"][0]
    assert f"parent run id: {parent}" in stdout
    assert re.search(r"^ ?books +single +0\.\d{3} ", stdout, re.MULTILINE)
    local = MlflowClient(uri).download_artifacts(parent, "config.yaml", str(folder))
    config = yaml.safe_load(Path(local).read_text())
    assert config["seeds"] == 2 and config["members"] == ["books", "movies"]
    children = find_runs(EXPERIMENT, tracking_uri=uri, parent_run_id=parent)
    assert sorted(zip(children["setting"], children["members"], children["seed"], strict=True)) == [
        ("multi", "books,movies", "0"),
        ("multi", "books,movies", "1"),
        ("single", "books", "0"),
        ("single", "books", "1"),
        ("single", "movies", "0"),
        ("single", "movies", "1"),
    ]
    client = MlflowClient(uri)
    figures = {a.path for a in client.list_artifacts(parent, "figures")}
    assert figures == {
        f"figures/{n}.png"
        for n in (
            "transitions_books",
            "transitions_movies",
            "soi_single_vs_multi",
            "accuracy_single_vs_multi",
            "side_effects",
        )
    }
    tables = {a.path for a in client.list_artifacts(parent, "tables")}
    assert "tables/summary.parquet" in tables and "tables/transitions_books.parquet" in tables
    assert {"tables/summary.json", "tables/transitions_books.json"} <= tables  # previewable
    pages = {a.path for a in client.list_artifacts(parent, "html")}
    assert pages == {"html/transitions_books.html", "html/transitions_movies.html"}
    # side effects (analysis/side_effects.py): each member alone vs in the mixture, per seed
    shift = pd.read_parquet(
        client.download_artifacts(
            parent, "tables/side_effects_prediction_shift.parquet", str(folder)
        )
    )
    assert set(shift["source"]) == {"multi"} and set(shift["target"]) == {"books", "movies"}
    assert shift["problem"].isna().all()
    assert (shift["seeds"] == 2).all()  # mean and interval over both seeds
    # the members' profiles (studies/profiles.py), as a transfer study logs them
    assert {"tables/member_profiles.parquet", "tables/pair_similarity.parquet"} <= tables
    profiles = pd.read_parquet(
        client.download_artifacts(parent, "tables/member_profiles.parquet", str(folder))
    )
    assert sorted(profiles.index) == ["books", "movies"] and (profiles["size"] == 80).all()
    assert profiles["difficulty_error"].notna().all()
    sums = shift.groupby("target")[["share_alone", "share_with"]].sum()
    assert sums.to_numpy() == pytest.approx(1.0)
    run = client.get_run(parent)
    summary = pd.read_json(
        client.download_artifacts(parent, "tables/summary.json", str(folder)), orient="split"
    ).set_index("member")
    metrics = run.data.metrics
    assert metrics["summary/books/id_multi"] == pytest.approx(summary.loc["books", "id_multi"])
    assert metrics["summary/mean/id_gain"] == pytest.approx(
        (summary["id_multi"] - summary["id_single"]).mean()
    )
    note = run.data.tags["mlflow.note.content"]
    assert note.startswith("**Single vs multi comparison**") and "#### Results" in note
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    link = f"#/experiments/{run.info.experiment_id}/runs/{parent}?workflowType=machine_learning"
    assert link in stdout
    for child in children["run_id"]:
        metrics, tags = client.get_run(child).data.metrics, client.get_run(child).data.tags
        assert "soi.study" not in tags  # the study kind is on the parent only
        assert "soi/train/never_learned_frac" in metrics and "ood/restaurants/acc" in metrics
        # analysed once, by the study (train() leaves its children to it)
        assert len(client.get_metric_history(child, "soi/train/never_learned_frac")) == 1


def test_analyze_re_analyses_from_the_parent_without_training(study) -> None:
    uri, folder, _ = study
    parent = find_runs(EXPERIMENT, tracking_uri=uri, study="compare")["run_id"][0]
    before = len(find_runs(EXPERIMENT, tracking_uri=uri))
    out = run_cli_here(["analyze", "--parent-run-id", parent, "--aggregate", "pairs"], uri, folder)
    assert re.search(r"^ ?movies +single +0\.\d{3} ", out, re.MULTILINE)
    assert len(find_runs(EXPERIMENT, tracking_uri=uri)) == before  # nothing trained


def test_the_notebook_runs_against_the_study(study, monkeypatch) -> None:
    uri, folder, _ = study
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("SOI_DEMO_EXPERIMENT", EXPERIMENT)
    nb = nbformat.read(REPO / "notebooks" / "demo_runs.ipynb", as_version=4)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
    ).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 5  # the compare parent's figures (see its test)
    text = "".join(o.get("text", "") for o in outputs)
    assert "transitions_books.png" in text and "'matched': 80" in text


def test_two_stage_and_sequential_transfer_commands(store, tmp_path: Path) -> None:
    small = ["--epochs", "2", "--max-examples", "60", "--batch-size", "16", "--no-progress", *EVAL]
    out = run_cli_here(
        [
            "two-stage",
            "--axis",
            "source",
            "--members",
            "books",
            "--ood",
            "restaurants",
            *small,
            "--stage2-bottom",
            "confidence:0.5",
            "--stage2-epochs",
            "1",
        ],
        store,
        tmp_path,
    )
    assert "stage 2 trained on 30 selected examples" in out
    parent = find_runs(tracking_uri=store, study="two_stage")["run_id"][0]
    client = MlflowClient(store)
    assert {a.path for a in client.list_artifacts(parent, "tables")} == {
        f"tables/two_stage_{name}.{ext}"
        for name in ("accuracy", "intervals", "migration")
        for ext in ("parquet", "json")
    }
    assert "stage 2 - control" in out and "bottom:confidence:0.5: paired by seed" in out
    out = run_cli_here(
        [
            "transfer",
            "--axis",
            "task",
            "--members",
            "sentiment,entailment",
            "--mode",
            "sequential",
            *small,
        ],
        store,
        tmp_path,
    )
    assert "trained 4 runs, reused 0" in out
    parent = find_runs(tracking_uri=store, study="transfer")["run_id"][0]
    # 4 runs of one member's 60 examples for 2 epochs
    assert client.get_run(parent).data.metrics["compute/example_passes"] == 4 * 60 * 2
    sequences = set(find_runs(tracking_uri=store, parent_run_id=parent)["sequence"].dropna())
    assert sequences == {"sentiment>entailment", "entailment>sentiment"}
    figures = {a.path for a in client.list_artifacts(parent, "figures")}
    assert {"figures/transfer_biplot.png", "figures/side_effects.png"} <= figures
    # a sequential run's test trace holds its target's predictions: no side-effect problem
    summary = cache_for(store).file(parent, "tables/side_effects_summary.parquet")
    assert pd.read_parquet(summary)["problem"].isna().all()


def test_learning_curve_command_logs_points_fits_and_figure(store, tmp_path: Path) -> None:
    out = run_cli_here(
        [*CURVE, "--epochs", "1", "--affinity-every", "5"],
        store,
        tmp_path,
    )
    assert "what the auxiliary data is worth" in out
    parent = find_runs(tracking_uri=store, study="learning_curve")["run_id"][0]
    client = MlflowClient(store)
    assert {a.path for a in client.list_artifacts(parent, "figures")} == {
        "figures/learning_curve.png",
        "figures/learning_curve_worth.png",
    }
    tables = {a.path for a in client.list_artifacts(parent, "tables")}
    assert {"tables/learning_curve_points.parquet", "tables/learning_curve_fits.parquet"} <= tables
    children = find_runs(tracking_uri=store, parent_run_id=parent)
    assert sorted(children["target_size"].astype(int)) == [20, 20, 40, 40, 80, 80]
    multi = children[children["setting"] == "multi"]["run_id"]
    assert all("affinity/sentiment_to_entailment" in client.get_run(r).data.metrics for r in multi)


def test_learning_curve_approximation_warm_starts_each_size(store, tmp_path: Path) -> None:
    out = run_cli_here(
        [*CURVE, "--epochs", "2", "--approx"],
        store,
        tmp_path,
    )
    # alone: 20 x 2 + 40 + 80 = 160; with aux (100 examples): 120 x 2 + 140 + 180 = 560
    assert "compute: 720 training example-passes" in out
    parent = find_runs(tracking_uri=store, study="learning_curve")["run_id"][0]
    children = find_runs(tracking_uri=store, parent_run_id=parent)
    client = MlflowClient(store)
    for _, child in children.iterrows():
        params = client.get_run(child["run_id"]).data.params
        warm = child["target_size"] != "20"
        assert params["epochs"] == ("1" if warm else "2")
        assert ("init_from" in params) == warm
