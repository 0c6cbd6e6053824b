"""The learning-curve study with auxiliary sizes and with pairwise + contextual sets,
trained for real on the built-in suite (tiny encoder) into a real SQLite store."""

from __future__ import annotations

import pandas as pd
import pytest
from mlflow import MlflowClient
from tracehelp import small_config

from soi_mlflow.errors import SoiInputError
from soi_mlflow.studies.learning_curve import CurveSettings, run

pytestmark = pytest.mark.e2e


def _base(store: str):
    return small_config(
        store, ("entailment",), axis="task", max_examples=100, eval_max_examples=40, epochs=1
    )


def test_aux_sizes_vary_the_auxiliary_data_and_identify_the_contextual_fit(store) -> None:
    settings = CurveSettings(
        "entailment", ("sentiment",), sizes=(20, 40, 80), aux_sizes=(30, 60), seeds=1
    )
    result = run(_base(store), settings)
    points = result.points
    aux = points[points["curve"] == "sentiment"]
    assert sorted(zip(aux["aux_size"], aux["n"], strict=True)) == [
        (a, n) for a in (30, 60) for n in (20, 40, 80)
    ]
    assert (aux["example_passes"] == aux["n"] + aux["aux_size"]).all()  # one epoch
    client = MlflowClient(store)
    for row in aux.itertuples():
        assert client.get_run(row.run_id).data.tags["soi.aux_size"] == str(row.aux_size)
    ctx = result.tables["learning_curve_contextual"].iloc[0]
    assert ctx["problem"] is None or pd.isna(ctx["problem"])
    assert {"a_t", "a_x", "a_x_stderr", "worth_per_aux_example"} <= set(ctx.index)
    metrics = client.get_run(result.parent_run_id).data.metrics
    assert metrics["compute/example_passes"] == points["example_passes"].sum()
    assert metrics["compute/runs"] == 9
    assert metrics["compute/wall_seconds"] >= metrics["compute/train_seconds"] > 0
    tables = {a.path for a in client.list_artifacts(result.parent_run_id, "tables")}
    assert "tables/learning_curve_contextual.parquet" in tables


def test_pairwise_and_contextual_sets_with_interaction(store) -> None:
    settings = CurveSettings("entailment", ("sentiment", "paraphrase"), sizes=(20, 40, 80), seeds=1)
    result = run(_base(store), settings)
    assert sorted(result.points["curve"].unique()) == [
        "alone",
        "paraphrase",
        "sentiment",
        "sentiment+paraphrase",
    ]
    both = result.points[result.points["curve"] == "sentiment+paraphrase"]
    assert (both["n_aux"] == 200).all()  # 100 examples of each auxiliary member
    inter = result.tables["learning_curve_interaction_by_seed"]
    assert len(inter) == 3
    finite = inter.dropna()
    assert (finite["interaction"] == finite["whole"] - finite["sum_of_pairs"]).all()
    # one aux size only: the contextual fit is reported as not identified, not fitted
    ctx = result.tables["learning_curve_contextual"]
    assert ctx["problem"].str.contains("--aux-sizes").all()
    client = MlflowClient(store)
    figures = {a.path for a in client.list_artifacts(result.parent_run_id, "figures")}
    assert figures == {"figures/learning_curve.png", "figures/learning_curve_worth.png"}


def test_bad_aux_sizes_are_refused_before_training(store) -> None:
    base = _base(store)
    for aux_sizes, pattern in (
        ((50, 500), r"\[500\] larger than the 100 training examples"),
        ((0, 50), "sizes must be positive"),
    ):
        with pytest.raises(SoiInputError, match=pattern):
            run(base, CurveSettings("entailment", ("sentiment",), (20, 40, 80), aux_sizes))
    with pytest.raises(SoiInputError, match="sets: expected one of"):
        run(base, CurveSettings("entailment", ("sentiment",), sets="pairs", sizes=(20, 40, 80)))
    with pytest.raises(SoiInputError, match="interval: expected one of"):
        run(
            base,
            CurveSettings("entailment", ("sentiment",), interval="percentile", sizes=(20, 40, 80)),
        )
    assert not MlflowClient(store).search_runs(["0"])
