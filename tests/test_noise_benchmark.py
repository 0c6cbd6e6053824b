"""The label-noise detection benchmark: its tables on known scores, bad settings, one tiny run."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest

from soi_mlflow.analysis.runs import load_traces
from soi_mlflow.errors import SoiInputError
from soi_mlflow.studies.noise_benchmark import (
    NoiseBenchmarkSettings,
    run,
    summarize,
    summary_rows,
    top_k_breakdown,
)


def test_summary_uses_the_sample_std_and_sorts_by_average_precision() -> None:
    per_seed = pd.DataFrame(
        {
            "detector": ["a", "a", "a", "b", "b", "b"],
            "auroc": [0.9, 0.8, 0.7, 0.6, 0.6, 0.6],
            "ap": [0.5, 0.6, 0.7, 0.9, 0.8, 1.0],
            "p_at_k": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
            "base_rate": [0.2] * 6,
            "seed": [0, 1, 2, 0, 1, 2],
        }
    )
    summary = summarize(per_seed)
    assert list(summary.index) == ["b", "a"]
    assert summary.loc["a", "auroc_mean"] == pytest.approx(0.8)
    assert summary.loc["a", "auroc_std"] == pytest.approx(0.1)  # ddof=1: sqrt(0.02 / 2)
    assert summary.loc["b", "auroc_std"] == 0.0 and summary.loc["b", "seeds"] == 3
    columns, rows = summary_rows(summary)
    assert columns[:4] == ["detector", "AUROC", "AP", "P@k"]
    assert rows[1][:2] == ["a", "0.800 ± 0.100"] and rows[1][2] == "0.600 ± 0.100"


def test_top_k_breakdown_on_hand_made_scores() -> None:
    scores = pd.DataFrame(
        {
            "planted": ["mislabeled", "mislabeled", "clean", "clean", "ambiguous", "clean"],
            "evidence": ["weak", "strong", "weak", "strong", "balanced", "strong"],
            "noise": ["boundary", "duplicate", "", "", "", ""],
            "good": [6, 5, 1, 2, 3, 0],  # k = 2: both noisy examples
            "poor": [1, 6, 5, 0, 4, 2],  # top 2: the duplicate and a clean weak example
        }
    )
    table = top_k_breakdown(scores, ["good", "poor"]).set_index("detector")
    assert table.loc["good", "caught_boundary"] == 1.0 == table.loc["good", "caught_duplicate"]
    assert table.loc["good", ["top_clean_weak", "top_ambiguous", "top_clean_strong"]].sum() == 0
    assert table.loc["poor", "caught_boundary"] == 0.0
    assert table.loc["poor", "caught_duplicate"] == 1.0
    assert table.loc["poor", "top_clean_weak"] == 0.5


def test_bad_settings_are_refused_before_any_run(store: str) -> None:
    bad = [
        ({"cl_folds": 1}, "cl_folds must be 0"),
        ({"seeds": 0}, "seeds must be a positive integer"),
        ({"members": ("nope",)}, "nope"),
        ({"noise": "boundary+typo"}, "unknown noise mechanism"),
        ({"mislabeled_rate": 0.6}, "mislabeled_rate"),
    ]
    for settings, message in bad:
        with pytest.raises(SoiInputError, match=message):
            given = NoiseBenchmarkSettings(tracking_uri=store, **settings)
            run(given.train_config(), given)
    assert not mlflow.MlflowClient(store).search_runs(
        [e.experiment_id for e in mlflow.MlflowClient(store).search_experiments()]
    )


@pytest.mark.e2e
def test_tiny_benchmark_logs_scores_of_every_detector(store: str) -> None:
    settings = NoiseBenchmarkSettings(
        train_size=60,
        eval_size=20,
        seeds=1,
        epochs=2,
        cl_folds=2,
        batch_size=16,
        mislabeled_rate=0.2,
        tracking_uri=store,
        experiment="noise",
    )
    result = run(settings.train_config(), settings)
    detectors = set(result.per_seed["detector"])
    assert detectors == {
        "confidence",
        "aum",
        "forgetting",
        "soi_flag",
        "oos_confidence",
        "confident_learning",
    }
    metrics = result.per_seed[["auroc", "ap", "p_at_k"]].to_numpy()
    assert np.isfinite(metrics).all() and ((metrics >= 0) & (metrics <= 1)).all()
    sets = result.per_seed.set_index("detector")["set_size"].dropna()
    assert set(sets.index) == {"soi_flag", "confident_learning"}
    columns, rows = summary_rows(result.summary)
    sizes = {row[0]: row[columns.index("set\nsize")] for row in rows}
    assert {d for d, size in sizes.items() if pd.notna(size)} == {"soi_flag", "confident_learning"}
    client = mlflow.MlflowClient(store)
    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["soi.study"] == "noise_benchmark"
    assert parent.data.params["noise"] == "boundary+asymmetric+duplicates"
    assert parent.data.metrics["noise/confidence/ap_mean"] == pytest.approx(
        result.summary.loc["confidence", "ap_mean"]
    )
    logged = {
        a.path
        for folder in ("tables", "figures")
        for a in client.list_artifacts(result.parent_run_id, folder)
    }
    assert {
        "tables/noise_benchmark_seeds.parquet",
        "tables/noise_benchmark_summary.csv",
        "tables/noise_benchmark_top_k.parquet",
        "figures/noise_benchmark.png",
    } <= logged
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{result.parent_run_id}'"
    )
    roles = sorted(c.data.tags["soi.role"] for c in children)
    assert roles == ["cross_validation", "cross_validation", "detect"]
    # each fold model trained without its held-out fold: the folds' traces are disjoint
    folds = [c for c in children if c.data.tags["soi.role"] == "cross_validation"]
    ids = [set(load_traces(c.info.run_id, "train", store)["example_id"]) for c in folds]
    assert not ids[0] & ids[1] and len(ids[0] | ids[1]) == 60
    detect = next(c for c in children if c.data.tags["soi.role"] == "detect")
    trace = load_traces(detect.info.run_id, "train", store)
    assert len(set(trace["example_id"])) == 60
    assert trace["margin"].notna().all()  # AUM from the recorded margins
