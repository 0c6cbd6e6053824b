"""The three views' comparison on constructed per-seed values with known agreement."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from soi_mlflow.errors import SoiInputError
from soi_mlflow.studies.views import ViewsSettings, _figure, compare_views, validate_views

PAIRS = [(s, t) for s in "abc" for t in "abc" if s != t]
TRUTH = dict(zip(PAIRS, [0.30, 0.20, 0.10, 0.0, -0.10, -0.20], strict=True))


def _values(seeds: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for seed in range(seeds):
        for (s, t), v in TRUTH.items():
            for view, value in (
                ("transfer", v),
                ("affinity", 0.01 * v),  # same order, another scale
                ("curves", -100 * v),  # the opposite order
            ):
                noise = rng.normal(0, 0.01 * abs(value) + 1e-4)
                rows.append(
                    {"view": view, "seed": seed, "source": s, "target": t, "value": value + noise}
                )
    return pd.DataFrame(rows)


def test_agreement_and_significance_of_known_views() -> None:
    out = compare_views(_values(), ViewsSettings())
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
