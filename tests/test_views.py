"""The three views' comparison on constructed per-seed values with known agreement."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from soi_mlflow.analysis.agreement import rank_agreement
from soi_mlflow.errors import SoiInputError
from soi_mlflow.studies.learning_curve.study import _plan
from soi_mlflow.studies.views import (
    ViewsSettings,
    log_views,
    per_seed_passes,
    validate_views,
    view_seeds,
    views_agreement,
)
from soi_mlflow.studies.views.analysis import _figure
from soi_mlflow.studies.views.settings import curve_settings

VIEWS_ = ("transfer", "affinity", "curves")
PAIRS = [(s, t) for s in "abc" for t in "abc" if s != t]
TRUTH = dict(zip(PAIRS, [0.30, 0.20, 0.10, 0.0, -0.10, -0.20], strict=True))


def _values(seeds: int | dict[str, int] = 4, rng: int = 1, spread: float = 0.01) -> pd.DataFrame:
    """Per-seed values of three views whose true ranks are known; ``seeds`` per view."""
    per_view = seeds if isinstance(seeds, dict) else dict.fromkeys(VIEWS_, seeds)
    rng = np.random.default_rng(rng)
    rows = []
    for seed in range(max(per_view.values())):
        for (s, t), v in TRUTH.items():
            for view, value in (
                ("transfer", v),
                ("affinity", 0.01 * v),  # same order, another scale
                ("curves", -100 * v),  # the opposite order
            ):
                if seed >= per_view[view]:
                    continue
                noise = rng.normal(0, spread * abs(value) + 1e-4)
                rows.append(
                    {"view": view, "seed": seed, "source": s, "target": t, "value": value + noise}
                )
    return pd.DataFrame(rows)


def test_agreement_and_significance_of_known_views() -> None:
    out = views_agreement(_values(), ViewsSettings())
    agree = out["agreement"].set_index(["first", "second"])
    same = agree.loc[("transfer", "affinity")]
    assert same["spearman"] == pytest.approx(1.0) and same["low"] > 0.8
    opposite = agree.loc[("transfer", "curves")]
    assert opposite["spearman"] == pytest.approx(-1.0) and opposite["high"] < -0.8
    sig = out["significance"].set_index(["view", "source", "target"])
    assert sig.loc[("transfer", "a", "b"), "significant"]
    assert sig.loc[("transfer", "a", "b"), "low"] < 0.30 < sig.loc[("transfer", "a", "b"), "high"]
    zero = sig.loc[("transfer", "b", "c")]  # true value 0
    assert zero["low"] <= 0 <= zero["high"] and not zero["significant"]
    # a percentile interval need not hold the point estimate; the figure draws it anyway
    out["agreement"].loc[0, "low"] = out["agreement"].loc[0, "spearman"] + 0.01
    assert len(_figure(out, ViewsSettings()).axes) == 4


def test_views_need_three_members_and_two_seeds(store) -> None:
    from tracehelp import small_config

    two = small_config(store, ("sentiment", "entailment"), axis="task")
    with pytest.raises(SoiInputError, match="at least 3 members"):
        validate_views(two, ViewsSettings())
    three = small_config(store, ("sentiment", "paraphrase", "entailment"), axis="task")
    with pytest.raises(SoiInputError, match="at least 2"):
        validate_views(three, ViewsSettings(seeds=1))


def test_budget_gives_each_view_the_seeds_it_pays_for(store) -> None:
    from tracehelp import small_config

    members = ["sentiment", "paraphrase", "entailment"]
    config = small_config(store, tuple(members), axis="task", max_examples=40)
    settings = ViewsSettings(sizes=(10, 20, 40))
    sizes = dict.fromkeys(members, 40)
    cost = per_seed_passes(members, sizes, settings.sizes, config.epochs)
    # the curves' cost is what the learning-curve study records for its runs: every
    # run trains its target size plus its auxiliary member's examples for every epoch
    curves = sum(
        (n + sum(sizes[a] for a in group)) * config.epochs
        for t in members
        for _, _, group, _, n in _plan(curve_settings(members, t, settings, 1))
    )
    assert cost == {"transfer": 3 * 120 * 2, "affinity": 120 * 2, "curves": curves}
    budget = 2 * cost["curves"] + 1
    seeds = validate_views(config, ViewsSettings(sizes=(10, 20, 40), budget=budget))
    assert seeds == {v: budget // cost[v] for v in cost}
    assert seeds["curves"] == 2 and seeds["affinity"] > seeds["transfer"] > 2
    for view, n in seeds.items():  # the most seeds that fit: one more would not
        assert n * cost[view] <= budget < (n + 1) * cost[view]
    assert view_seeds(cost, ViewsSettings(seeds=4)) == dict.fromkeys(cost, 4)
    with pytest.raises(SoiInputError, match=f"fewer than 2 seeds of curves.*{2 * curves:,}"):
        view_seeds(cost, ViewsSettings(budget=2 * curves - 1))
    with pytest.raises(SoiInputError, match="budget"):
        validate_views(config, ViewsSettings(sizes=(10, 20, 40), budget=-1))


def test_views_at_one_budget_compare_over_their_own_seeds(store) -> None:
    from soi_mlflow.tracking.run_open import open_run

    seeds = {"transfer": 3, "affinity": 9, "curves": 2}
    values = _values(seeds)
    settings = ViewsSettings(budget=1000)
    out = views_agreement(values, settings)
    agree = out["agreement"].set_index(["first", "second"])
    same = agree.loc[("transfer", "affinity")]
    assert (same["seeds_first"], same["seeds_second"]) == (3, 9)
    assert same["spearman"] == pytest.approx(1.0) and same["low"] > 0.8
    assert agree.loc[("transfer", "curves"), "high"] < -0.8
    sig = out["significance"].set_index("view")["seeds"]
    assert sig.groupby(level=0).max().to_dict() == seeds
    parent = open_run(store, experiment="views-test", run_name="views")
    compute = pd.DataFrame(
        [
            {
                "view": v,
                "seeds": n,
                "example_passes": 100 * n,
                "seconds": 1.0,
                "runs": n,
                "significant_pairs": 1,
            }
            for v, n in seeds.items()
        ]
    )
    log_views(parent, values, out, compute, settings)
    metrics = parent.client.get_run(parent.run_id).data.metrics
    assert metrics["compute/affinity/seeds"] == 9 and metrics["compute/budget"] == 1000
    assert metrics["agreement/transfer_vs_curves/spearman"] == pytest.approx(-1.0)
    names = {f.path for f in parent.client.list_artifacts(parent.run_id, "tables")}
    assert "tables/views_agreement.parquet" in names


def test_rank_agreement_uses_each_tables_own_seeds() -> None:
    """A view run on more seeds is averaged over all of them, not only the shared ones:
    the second table's first 3 seeds rank the items in reverse, its 9 seeds in order."""
    items = [("a", "b"), ("a", "c"), ("b", "c"), ("b", "a")]
    first = pd.DataFrame(
        [
            {"seed": s, "source": i, "target": t, "value": k + 0.01 * s}
            for s in range(3)
            for k, (i, t) in enumerate(items)
        ]
    )
    second = pd.DataFrame(
        [
            {"seed": s, "source": i, "target": t, "value": -3.0 * k if s < 3 else 2.0 * k}
            for s in range(9)
            for k, (i, t) in enumerate(items)
        ]
    )
    rho, low, high = rank_agreement(first, second, ["source", "target"], samples=500)
    assert rho == pytest.approx(1.0)
    assert rank_agreement(first, second[second["seed"] < 3], ["source", "target"])[0] == (
        pytest.approx(-1.0)
    )
    # independent draws: some resamples of the second table hold mostly reversed seeds
    assert low < 0 < high
