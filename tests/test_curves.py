"""Learning-curve fits recover known parameters from curves of each form (with noise)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from soi_mlflow.analysis.curves import (
    best_fit,
    contextual,
    exponential,
    fit_contextual,
    fit_curve,
    power_law,
    worth_from_contextual,
    worth_from_curve,
)
from soi_mlflow.errors import SoiInputError

SIZES = np.array([50, 100, 200, 400, 800, 1600, 3200], dtype=float)


def _noisy(values: np.ndarray, seed: int = 0, scale: float = 0.003) -> np.ndarray:
    return values + np.random.default_rng(seed).normal(0, scale, len(values))


def test_power_law_parameters_are_recovered() -> None:
    y = _noisy(power_law(SIZES, 0.92, 2.0, 0.6))
    fit = fit_curve(SIZES, y, "power_law")
    assert fit.params["c"] == pytest.approx(0.92, abs=0.01)
    assert fit.params["b"] == pytest.approx(0.6, abs=0.1)
    assert fit.params["a"] == pytest.approx(2.0, rel=0.35)
    assert all(v > 0 for v in fit.stderr.values())
    assert best_fit(SIZES, y).form == "power_law"


def test_exponential_parameters_are_recovered() -> None:
    y = _noisy(exponential(SIZES, 0.88, 0.002, -0.3))
    fit = fit_curve(SIZES, y, "exponential")
    assert fit.params["c"] == pytest.approx(0.88, abs=0.01)
    assert fit.params["a"] == pytest.approx(0.002, rel=0.15)
    assert fit.params["b"] == pytest.approx(-0.3, abs=0.15)
    assert best_fit(SIZES, y).form == "exponential"


def test_contextual_form_separates_own_and_auxiliary_data() -> None:
    n_t = np.tile(SIZES, 3)
    n_x = np.repeat([0.0, 1000.0, 2000.0], len(SIZES))
    y = _noisy(contextual((n_t, n_x), 0.9, -0.2, 0.0015, 0.0005), seed=1, scale=0.002)
    fit = fit_contextual(n_t, n_x, y)
    assert fit.params["a_t"] == pytest.approx(0.0015, rel=0.15)
    assert fit.params["a_x"] == pytest.approx(0.0005, rel=0.25)
    assert worth_from_contextual(fit, 2000) == pytest.approx(2000 / 3, rel=0.3)


def test_worth_by_inverting_the_alone_curve() -> None:
    alone = fit_curve(SIZES, exponential(SIZES, 0.9, 0.002, 0.0), "exponential")
    # the score the target alone reaches at 600 examples, observed with aux at 200
    target = float(exponential(600, 0.9, 0.002, 0.0))
    assert worth_from_curve(alone, 200, target) == pytest.approx(400, rel=0.02)
    assert worth_from_curve(alone, 200, 0.95) == float("inf")


def test_too_few_sizes_are_refused() -> None:
    with pytest.raises(SoiInputError, match="at least 3 different sizes"):
        fit_curve([50, 100], [0.5, 0.6], "power_law")
    with pytest.raises(SoiInputError, match="unknown curve form"):
        fit_curve(SIZES, power_law(SIZES, 0.9, 1, 0.5), "cubic")


def test_bad_learning_curve_sizes_are_refused_before_training(store) -> None:
    from mlflow import MlflowClient

    from soi_mlflow.data.mixture import MixtureSpec
    from soi_mlflow.studies import learning_curve
    from soi_mlflow.studies.learning_curve import CurveSettings
    from soi_mlflow.training import TrainConfig

    base = TrainConfig(
        MixtureSpec("builtin", "task", ("entailment",)), tracking_uri=store, progress=False
    )
    for sizes, pattern in (
        ([0, 50, 100], "sizes must be positive"),
        ([-5, 50, 100], "sizes must be positive"),
        ([50, 100, 5000], r"\[5000\] larger than the 2000 training examples"),
        ([50, 100], "at least 3 sizes"),
    ):
        with pytest.raises(SoiInputError, match=pattern):
            learning_curve.run(base, CurveSettings("entailment", ("sentiment",), tuple(sizes)))
    with pytest.raises(SoiInputError, match="cannot also be auxiliary"):
        learning_curve.run(base, CurveSettings("entailment", ("entailment",), (10, 20, 30)))
    with pytest.raises(SoiInputError, match="is on axis 'source', not 'task'"):
        learning_curve.run(base, CurveSettings("entailment", ("books",), (10, 20, 30)))
    assert not MlflowClient(store).search_runs(["0"])


def test_a_fit_on_its_bound_is_not_chosen() -> None:
    """A target that stays at chance (flat, noisy points, as books alone at 50-200
    examples) sends the exponential to the bound of its asymptote (c = 2.0, an accuracy
    of 200 %): that fit did not converge, so the power law that did is chosen even though
    the runaway one has the lower AIC; what the auxiliary data is worth is then beyond
    the alone curve, not read off a runaway one."""
    from soi_mlflow.analysis.worth import seed_worth

    sizes, flat = [50, 100, 200], [0.517, 0.482, 0.517]
    runaway = fit_curve(sizes, flat, "exponential")
    assert runaway.at_bounds.keys() == {"c"} and "ran to its bound (c = 2)" in runaway.problem
    chosen = best_fit(sizes, flat)
    assert chosen.form == "power_law" and chosen.problem is None
    assert chosen.aic > runaway.aic and chosen.params["c"] < 0.6
    points = pd.DataFrame(
        {
            "seed": 0,
            "curve": ["alone"] * 3 + ["movies"] * 3,
            "aux_size": [0] * 3 + [2000] * 3,
            "n": sizes * 2,
            "score": [*flat, 0.95, 0.95, 0.95],
        }
    )
    worth = seed_worth(points)
    assert worth["worth"].isna().all() and worth["problem"].str.contains("beyond").all()
    assert best_fit([50, 100, 200, 400], [0.6, 0.7, 0.76, 0.79]).problem is None
