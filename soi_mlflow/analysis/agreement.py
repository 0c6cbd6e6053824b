"""Do two ways of measuring transfer rank the same things the same way? Spearman rank
correlation of their seed-mean estimates, with a bootstrap interval over seeds.

Both inputs are per-seed tables (``seed``, the key columns, ``value``). A bootstrap
resample draws seeds with replacement. When both tables hold the same seeds it applies
the same draw to both (paired); when they hold different seeds (two methods run at one
compute budget, so the cheaper one runs more seeds) each table's seeds are drawn
independently. Either way the interval reflects the seed-to-seed noise of both.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.stats import rankdata, spearmanr

from soi_mlflow.errors import SoiInputError

ALONE = "alone"


def transfer_gains(points: pd.DataFrame) -> pd.DataFrame:
    """Per seed, auxiliary set, auxiliary size and target size: score with the auxiliary
    data minus the target-alone score of the same seed and size."""
    alone = points[points["curve"] == ALONE].groupby(["seed", "n"])["score"].mean()
    aux = points[points["curve"] != ALONE]
    gains = aux.assign(
        alone=[alone.get((s, n), np.nan) for s, n in zip(aux["seed"], aux["n"], strict=True)]
    )
    gains["value"] = gains["score"] - gains["alone"]
    return gains[["seed", "curve", "aux_size", "n", "value"]].reset_index(drop=True)


def spearman(a: pd.Series, b: pd.Series) -> float:
    """Spearman's rho; NaN when either side is constant or fewer than 3 items match."""
    both = pd.concat([a, b], axis=1, join="inner").dropna()
    if len(both) < 3 or both.iloc[:, 0].nunique() < 2 or both.iloc[:, 1].nunique() < 2:
        return float("nan")
    return float(spearmanr(both.iloc[:, 0], both.iloc[:, 1]).statistic)


def rank_agreement(
    first: pd.DataFrame,
    second: pd.DataFrame,
    keys: list[str],
    level: float = 0.95,
    samples: int = 2000,
    rng: int = 0,
) -> tuple[float, float, float]:
    """(rho of the seed means, low, high) between two per-seed estimate tables: a
    percentile bootstrap over seeds, the same draw for both tables when they hold the
    same seeds, independent draws over each table's own seeds when they do not."""
    for name, frame in (("first", first), ("second", second)):
        missing = {"seed", "value", *keys} - set(frame.columns)
        if missing:
            raise SoiInputError(f"rank agreement: the {name} table lacks {sorted(missing)}")
    own = [sorted(set(f["seed"])) for f in (first, second)]
    paired = own[0] == own[1]
    if not (own[0] and own[1]):
        raise SoiInputError("rank agreement: a table has no seed")
    # seeds x items, one mean value per seed and item
    a, b = (f.groupby(["seed", *keys])["value"].mean().unstack(keys) for f in (first, second))
    items = a.columns.intersection(b.columns)
    a, b = (t.reindex(index=s, columns=items) for t, s in zip((a, b), own, strict=True))
    estimate = spearman(a.mean(), b.mean())
    if min(len(own[0]), len(own[1])) < 2:
        return estimate, float("nan"), float("nan")
    x, y = a.to_numpy(float), b.to_numpy(float)
    gen = np.random.default_rng(rng)
    draws_x = gen.integers(0, len(x), size=(samples, len(x)))
    draws_y = draws_x if paired else gen.integers(0, len(y), size=(samples, len(y)))
    with warnings.catch_warnings():  # an item with no value in a draw gives NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        mx, my = np.nanmean(x[draws_x], axis=1), np.nanmean(y[draws_y], axis=1)
    values = np.array([_rho(u, v) for u, v in zip(mx, my, strict=True)])
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return estimate, float("nan"), float("nan")
    tail = (1 - level) / 2
    low, high = np.quantile(values, [tail, 1 - tail], method="inverted_cdf")
    return estimate, float(low), float(high)


def _rho(u: np.ndarray, v: np.ndarray) -> float:
    keep = ~(np.isnan(u) | np.isnan(v))
    u, v = u[keep], v[keep]
    if len(u) < 3 or np.ptp(u) == 0 or np.ptp(v) == 0:
        return float("nan")
    ru, rv = rankdata(u), rankdata(v)
    return float(np.corrcoef(ru, rv)[0, 1])
