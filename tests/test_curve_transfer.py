"""Contextual fits, pairwise/contextual transfer and intervals over seeds, on generated
data whose right answers are known (pure numpy, no training)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from soi_mlflow.analysis.curves import (
    contextual,
    contextual_design_problem,
    contextual_ratio,
    exponential,
    fit_contextual,
)
from soi_mlflow.analysis.intervals import bootstrap_mean, bootstrap_seeds, t_interval
from soi_mlflow.analysis.worth import transfer_summary
from soi_mlflow.errors import SoiInputError

SIZES = np.array([50, 100, 200, 400, 800], dtype=float)
AUX_SIZES = np.array([250, 500, 1000, 2000], dtype=float)
A_T, A_X = 0.003, 0.0008


def _grid(seed: int, noise: float = 0.004) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_t = np.tile(SIZES, len(AUX_SIZES) + 1)
    n_x = np.repeat(np.concatenate([[0.0], AUX_SIZES]), len(SIZES))
    clean = contextual((n_t, n_x), 0.85, -0.4, A_T, A_X)
    return n_t, n_x, clean + np.random.default_rng(seed).normal(0, noise, len(clean))


def test_contextual_fit_recovers_a_t_and_a_x_when_aux_sizes_vary() -> None:
    covered = 0
    for seed in range(10):
        fit = fit_contextual(*_grid(seed))
        assert fit.params["a_t"] == pytest.approx(A_T, rel=0.2)
        assert fit.params["a_x"] == pytest.approx(A_X, rel=0.3)
        low, high = fit.interval("a_x")
        covered += low <= A_X <= high
        ratio, stderr = contextual_ratio(fit)
        assert ratio == pytest.approx(A_X / A_T, rel=0.3)
        assert 0 < stderr < ratio
    assert covered >= 8  # 95 % intervals over 10 noisy curves


def test_contextual_fit_is_refused_when_aux_data_has_one_size() -> None:
    n_t = np.tile(SIZES, 2)
    n_x = np.repeat([0.0, 2000.0], len(SIZES))
    y = contextual((n_t, n_x), 0.85, -0.4, A_T, A_X)
    with pytest.raises(SoiInputError, match=r"one auxiliary size \(2000\).*--aux-sizes"):
        fit_contextual(n_t, n_x, y)
    assert contextual_design_problem(*_grid(0)[:2]) is None
    with pytest.raises(SoiInputError, match="at least 3 different target sizes"):
        fit_contextual([50, 100, 50, 100], [0, 0, 500, 1000], [0.5, 0.6, 0.6, 0.7])
    with pytest.raises(SoiInputError, match="collinear"):
        fit_contextual(SIZES, 2 * SIZES, exponential(SIZES, 0.9, 0.003, 0.0))


def _additive_points(
    seeds: int, worth: dict[str, float], synergy: float = 0.0, noise: float = 0.004
) -> pd.DataFrame:
    """score(n, S) = f(n + sum of worth over S [+ synergy when S has both]) + noise."""
    rows = []
    for seed in range(seeds):
        rng = np.random.default_rng(100 + seed)
        for curve, extra in (
            ("alone", 0.0),
            ("a", worth["a"]),
            ("b", worth["b"]),
            ("a+b", worth["a"] + worth["b"] + synergy),
        ):
            for n in SIZES:
                score = exponential(n + extra, 0.9, 0.004, -0.5) + rng.normal(0, noise)
                rows.append(
                    {
                        "seed": seed,
                        "n": n,
                        "curve": curve,
                        "aux_size": 0 if curve == "alone" else 1000,
                        "score": score,
                    }
                )
    return pd.DataFrame(rows)


def test_interaction_is_zero_within_its_interval_on_additive_data() -> None:
    out = transfer_summary(_additive_points(5, {"a": 100, "b": 60}), ["a", "b"])
    overall = out["interaction_over_sizes"].iloc[0]
    assert overall["low"] <= 0 <= overall["high"]
    assert not overall["significant"]
    assert (out["interaction"]["low"] <= 0).all() and (out["interaction"]["high"] >= 0).all()
    worth = out["worth_over_sizes"].set_index("curve")
    for curve, truth in (("a", 100), ("b", 60), ("a+b", 160)):
        assert worth.loc[curve, "low"] <= truth <= worth.loc[curve, "high"]
        assert worth.loc[curve, "significant"]


def test_interaction_detects_synergy() -> None:
    out = transfer_summary(_additive_points(5, {"a": 100, "b": 60}, synergy=150), ["a", "b"])
    overall = out["interaction_over_sizes"].iloc[0]
    assert overall["significant"] and overall["low"] > 0
    assert overall["mean"] == pytest.approx(150, rel=0.3)


def test_intervals_cover_the_true_mean_at_about_their_nominal_rate() -> None:
    rng = np.random.default_rng(7)
    replicates, level = 400, 0.9
    boot = t3 = 0
    for _ in range(replicates):
        _, low, high = bootstrap_mean(rng.normal(2.0, 1.0, 20), level, samples=1000, rng=rng)
        boot += low <= 2.0 <= high
        _, low, high = t_interval(rng.normal(2.0, 1.0, 3), level)
        t3 += low <= 2.0 <= high
    assert 0.84 <= boot / replicates <= 0.95  # percentile bootstrap, 20 seeds
    assert 0.85 <= t3 / replicates <= 0.95  # Student t, 3 seeds


def test_seed_bootstrap_of_a_statistic_resamples_whole_seeds() -> None:
    rng = np.random.default_rng(3)
    covered, replicates = 0, 40
    for _ in range(replicates):
        frame = pd.DataFrame({"seed": np.repeat(np.arange(15), 2), "x": rng.normal(1.0, 1.0, 30)})
        # a seed's two rows share one offset: the statistic's spread is across seeds
        frame["x"] += np.repeat(rng.normal(0, 1.0, 15), 2)
        est, low, high = bootstrap_seeds(frame, lambda f: f["x"].mean(), samples=200, rng=rng)
        assert low <= est <= high
        covered += low <= 1.0 <= high
    assert covered / replicates >= 0.8


def test_transfer_cells_get_intervals_over_seeds() -> None:
    from soi_mlflow.analysis.transfer import transfer_intervals

    rows = []
    for seed, noise in enumerate((-0.01, 0.0, 0.01)):
        rows += [
            {"seed": seed, "source": None, "target": "x", "score": 0.60},
            {"seed": seed, "source": None, "target": "y", "score": 0.70},
            {"seed": seed, "source": "y", "target": "x", "score": 0.70 + noise},
            {"seed": seed, "source": "x", "target": "y", "score": 0.70 + noise},
        ]
    cells = transfer_intervals(pd.DataFrame(rows)).set_index(["source", "target"])
    helps, nothing = cells.loc[("y", "x")], cells.loc[("x", "y")]
    # mean 0.10, sd 0.01 over 3 seeds: t(0.975, 2) * 0.01 / sqrt(3) = 0.0248
    assert helps["mean"] == pytest.approx(0.10)
    assert helps["high"] - helps["mean"] == pytest.approx(0.0248, abs=1e-4)
    assert helps["significant"] and not nothing["significant"]
    assert helps["seeds"] == 3


def test_auxiliary_sets_by_setting() -> None:
    from soi_mlflow.studies.learning_curve import CurveSettings

    two = ("sentiment", "paraphrase")
    assert CurveSettings("entailment", aux=two).aux_sets() == [("sentiment",), ("paraphrase",), two]
    pairwise = CurveSettings("entailment", aux=two, sets="pairwise").aux_sets()
    assert pairwise == [("sentiment",), ("paraphrase",)]
    assert CurveSettings("entailment", aux=two, sets="all").aux_sets() == [two]
    assert CurveSettings("entailment", aux=("sentiment",)).aux_sets() == [("sentiment",)]
