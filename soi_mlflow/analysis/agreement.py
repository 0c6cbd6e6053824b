"""Do two ways of measuring transfer rank the same things the same way? Spearman rank
correlation of their seed-mean estimates, with a bootstrap interval over seeds.

Both inputs are per-seed tables (``seed``, the key columns, ``value``). A bootstrap
resample draws seeds with replacement and applies the same draw to both estimates,
so the interval reflects the seed-to-seed noise of both.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from soi_mlflow.analysis.intervals import bootstrap_seeds
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
    samples: int = 1000,
    rng: int = 0,
) -> tuple[float, float, float]:
    """(rho of the seed means, low, high) between two per-seed estimate tables."""
    for name, frame in (("first", first), ("second", second)):
        missing = {"seed", "value", *keys} - set(frame.columns)
        if missing:
            raise SoiInputError(f"rank agreement: the {name} table lacks {sorted(missing)}")
    seeds = sorted(set(first["seed"]) & set(second["seed"]))
    if not seeds:
        raise SoiInputError("rank agreement: the two tables share no seed")
    frame = pd.concat(
        [
            first[first["seed"].isin(seeds)].assign(_view=0),
            second[second["seed"].isin(seeds)].assign(_view=1),
        ],
        ignore_index=True,
    )

    def statistic(f: pd.DataFrame) -> float:
        means = f.groupby(["_view", *keys])["value"].mean()
        return spearman(means.loc[0], means.loc[1])

    return bootstrap_seeds(frame, statistic, level=level, samples=samples, rng=rng)
