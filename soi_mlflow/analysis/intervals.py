"""Confidence intervals over seeds, for any estimate a study repeats once per seed.

Each seed is one full replicate of a study (its own training runs), so the seeds are the
unit of resampling. Two stated methods:

- ``"t"`` (default): Student t on the per-seed values, mean ± t(level, s-1) · sd / √s.
  Holds its nominal rate from 2 seeds on when the per-seed values are roughly normal.
- ``"bootstrap"``: percentile bootstrap over seeds (whole seeds resampled with
  replacement, the statistic recomputed on each resample). Needs no normality but
  under-covers with few seeds (3 seeds allow only 10 distinct resamples); docs/learning.md
  gives its measured coverage.

``bootstrap_seeds`` also serves statistics that are not a mean of per-seed values, e.g. a
rank correlation between two views averaged over the resampled seeds.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy.stats import t as student_t

from soi_mlflow.errors import SoiInputError

METHODS = ("t", "bootstrap")
BOOTSTRAP_SAMPLES = 2000


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise SoiInputError(f"level: expected a confidence level in (0, 1), got {level!r}")


def t_interval(values, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) of per-seed ``values``; the bounds are NaN with one seed."""
    _check_level(level)
    v = np.asarray(values, float)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(v.mean())
    if len(v) < 2:
        return mean, float("nan"), float("nan")
    half = (
        float(student_t.ppf(0.5 + level / 2, len(v) - 1)) * float(v.std(ddof=1)) / np.sqrt(len(v))
    )
    return mean, mean - half, mean + half


def bootstrap_seeds(
    frame: pd.DataFrame,
    statistic: Callable[[pd.DataFrame], float],
    seed_column: str = "seed",
    level: float = 0.95,
    samples: int = BOOTSTRAP_SAMPLES,
    rng: int | np.random.Generator = 0,
) -> tuple[float, float, float]:
    """(statistic on all seeds, low, high): percentile interval of ``statistic`` over
    resamples of whole seeds. Resamples where the statistic is NaN are dropped."""
    _check_level(level)
    rng = np.random.default_rng(rng)
    seeds = frame[seed_column].unique()
    estimate = float(statistic(frame))
    if len(seeds) < 2:
        return estimate, float("nan"), float("nan")
    codes = frame[seed_column].map({s: k for k, s in enumerate(seeds)}).to_numpy()
    rows = [np.flatnonzero(codes == k) for k in range(len(seeds))]
    values = []
    for _ in range(samples):
        drawn = rng.integers(0, len(seeds), size=len(seeds))
        index = np.concatenate([rows[k] for k in drawn])
        resample = frame.iloc[index].reset_index(drop=True)
        # relabel each draw so a seed drawn twice counts as two replicates
        resample[seed_column] = np.repeat(np.arange(len(drawn)), [len(rows[k]) for k in drawn])
        values.append(float(statistic(resample)))
    v = np.asarray(values)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return estimate, float("nan"), float("nan")
    tail = (1 - level) / 2
    low, high = np.quantile(v, [tail, 1 - tail], method="inverted_cdf")
    return estimate, float(low), float(high)


def bootstrap_mean(
    values, level: float = 0.95, samples: int = BOOTSTRAP_SAMPLES, rng=0
) -> tuple[float, float, float]:
    """Percentile bootstrap interval of the mean of per-seed ``values``."""
    v = np.asarray(values, float)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    if len(v) < 2:
        return float(v.mean()), float("nan"), float("nan")
    _check_level(level)
    rng = np.random.default_rng(rng)
    means = v[rng.integers(0, len(v), size=(samples, len(v)))].mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail], method="inverted_cdf")
    return float(v.mean()), float(low), float(high)


def interval(values, method: str = "t", level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) of per-seed ``values`` by ``method`` (``"t"`` or ``"bootstrap"``)."""
    if method == "t":
        return t_interval(values, level)
    if method == "bootstrap":
        return bootstrap_mean(values, level)
    raise SoiInputError(f"interval method: expected one of {', '.join(METHODS)}, got {method!r}")


def summarize(
    frame: pd.DataFrame,
    by: list[str],
    value: str,
    method: str = "t",
    level: float = 0.95,
) -> pd.DataFrame:
    """Per group of ``by``: the mean of ``value`` over seeds, its interval, the number of
    seeds and whether the interval excludes zero (``significant``)."""
    rows = []
    for key, part in frame.groupby(by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        mean, low, high = interval(part[value], method, level)
        rows.append(
            {
                **dict(zip(by, key, strict=True)),
                "mean": mean,
                "low": low,
                "high": high,
                "seeds": int(part[value].notna().sum()),
                "significant": bool(low > 0 or high < 0),
            }
        )
    out = pd.DataFrame(rows)
    out.attrs["interval"] = f"{method}, {level:.0%}"
    return out
