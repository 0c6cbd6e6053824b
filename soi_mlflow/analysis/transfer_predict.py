"""Predict transfer T[source, target] for pairs never trained, from their factors, and
recommend auxiliary members for a target (docs/studies.md, "Recommend").

The predictor is ridge regression on standardised factors, solved in closed form with
numpy: with a few dozen pairs and as many factors, a linear model whose shrinkage keeps
it near the mean when the factors say little is the simplest one that can be checked by
leave-one-out; k-nearest pairs would need a distance over factors of unrelated scales.
Its penalty is chosen on the training pairs by the closed-form leave-one-out error of
each penalty in ``ALPHAS``. A factor missing for a pair is set to the training pairs'
mean (0 after standardising); a factor constant over the training pairs is left out.

``evaluate`` reports the predictor's leave-one-pair-out and leave-one-source-out errors
(MAE, RMSE, Spearman's rho with the measured T) beside two baselines: the row mean (the
source's mean T to the other targets; when the whole source is left out, nothing of it
is known, so the global mean of the training pairs) and surface similarity alone (the
same ridge on the pair similarity columns only). Its ``verdict`` says whether the
predictor beats each baseline: its MAE lower with a paired bootstrap interval (over the
pairs) of the difference below 0; otherwise "does not beat". The interval of a
predicted cell is the prediction plus the ``level`` percentiles of the leave-one-out
residuals (split-conformal style: it assumes the new pair is like the held-out ones).

Pure cores on DataFrames; the command is ``cli/recommend.py``, the study that checks a
recommendation is ``studies/recommend/``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from soi_mlflow.analysis.intervals import t_interval
from soi_mlflow.analysis.profiles import PAIR_COLUMNS
from soi_mlflow.analysis.transfer_factors import pair_means, rank_corr
from soi_mlflow.common.console import counted
from soi_mlflow.errors import SoiInputError

KEYS = ["source", "target"]
ALPHAS = (0.1, 1.0, 10.0, 100.0)
SIMILARITY = PAIR_COLUMNS
"""the pair similarity columns (``analysis/profiles.py``): the surface-similarity baseline"""
MIN_PAIRS = 6  # fewer measured pairs: the errors are reported, the verdict is "too small"
LEVEL = 0.9
N_BOOT = 1000
PREDICTOR, ROW_MEAN, SIMILARITY_ONLY = "ridge on factors", "row mean", "similarity alone"
ERROR_COLUMNS = [
    "scheme",
    "model",
    "mae",
    "rmse",
    "rho",
    "n",
    "mae_diff",
    "diff_low",
    "diff_high",
    "verdict",
    "problem",
]
RECOMMEND_COLUMNS = [
    "rank",
    "candidate",
    "gain",
    "low",
    "high",
    "evidence",
    "n",
    "n_seeds",
]


def factor_columns(factors: pd.DataFrame, only: tuple[str, ...] | None = None) -> list[str]:
    """The numeric factor columns of a ``pair_factors`` frame (``only``: those named)."""
    numeric = [c for c in factors.select_dtypes("number").columns if c not in (*KEYS, "T")]
    return [c for c in numeric if only is None or c in only]


def _standardise(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both scaled by the training columns' mean and std; NaN -> 0 (the mean); columns
    constant (or all missing) in training dropped; the test values clipped to the
    training range: a held-out source whose factor lies far outside the few values the
    training pairs have (the class entropy of a 3-class source among binary ones:
    thousands of standard deviations off) would otherwise be extrapolated linearly, to a
    T of several units."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        mean = np.nanmean(train, axis=0)
        std = np.nanstd(train, axis=0)
    keep = np.isfinite(std) & (std > 1e-12)
    z = [(np.nan_to_num((x[:, keep] - mean[keep]) / std[keep])) for x in (train, test)]
    if len(z[0]):
        z[1] = np.clip(z[1], z[0].min(axis=0), z[0].max(axis=0))
    return z[0], z[1]


def _ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    """Coefficients and intercept of ridge on centred ``x`` (intercept unpenalised)."""
    ym = float(y.mean())
    if x.shape[1] == 0:
        return np.zeros(0), ym
    a = x.T @ x + alpha * np.eye(x.shape[1])
    return np.linalg.solve(a, x.T @ (y - ym)), ym


def _loo_error(x: np.ndarray, y: np.ndarray, alpha: float) -> float:
    """Closed-form leave-one-out MSE of ridge (the intercept's leverage included)."""
    n = len(y)
    if x.shape[1] == 0:
        return float(np.mean((y - y.mean()) ** 2)) * (n / max(n - 1, 1)) ** 2
    xc = x - x.mean(axis=0)
    hat = xc @ np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T) + 1.0 / n
    fitted = hat @ y
    lev = np.clip(np.diag(hat), None, 1 - 1e-9)
    return float(np.mean(((y - fitted) / (1 - lev)) ** 2))


def ridge_predict(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, alphas=ALPHAS
) -> np.ndarray:
    """Predictions for ``test_x`` of ridge fitted on the training rows, the penalty the
    one of ``alphas`` with the least closed-form leave-one-out error on them."""
    if len(train_y) == 0:
        return np.full(len(test_x), np.nan)
    xs, ts = _standardise(train_x, test_x)
    if len(train_y) < 3 or xs.shape[1] == 0:
        alpha = alphas[-1]
    else:
        alpha = min(alphas, key=lambda a: _loo_error(xs, train_y, a))
    beta, ym = _ridge(xs - xs.mean(axis=0), train_y, alpha)
    return ym + (ts - xs.mean(axis=0)) @ beta


def _measured(deltas: pd.DataFrame, factors: pd.DataFrame) -> pd.DataFrame:
    """The measured pairs (mean T over seeds) with their factors."""
    if any(c not in factors.columns for c in KEYS):
        raise SoiInputError("factors: expected the columns source, target (see pair_factors)")
    means = pair_means(deltas)
    means = means[np.isfinite(means["T"].to_numpy(float))]
    return means.merge(factors.drop_duplicates(KEYS), on=KEYS, how="left")


def _row_mean(train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    """Each test pair's source's mean T over its training pairs; the global mean when the
    source has none."""
    by_source = train.groupby("source")["T"].mean()
    fallback = float(train["T"].mean()) if len(train) else np.nan
    return test["source"].map(by_source).fillna(fallback).to_numpy(float)


def cross_predictions(
    deltas: pd.DataFrame, factors: pd.DataFrame, scheme: str = "pair"
) -> pd.DataFrame:
    """Held-out predictions of every measured pair: ``scheme`` "pair" leaves one pair out,
    "source" every pair of its source. Columns ``source, target, T`` and one per model
    (``PREDICTOR``, ``ROW_MEAN``, ``SIMILARITY_ONLY``: NaN without similarity columns)."""
    if scheme not in ("pair", "source"):
        raise SoiInputError(f"scheme: expected pair or source, got {scheme!r}")
    data = _measured(deltas, factors)
    every, similar = factor_columns(data), factor_columns(data, SIMILARITY)
    out = data[[*KEYS, "T"]].copy()
    for name in (PREDICTOR, ROW_MEAN, SIMILARITY_ONLY):
        out[name] = np.nan
    groups = range(len(data)) if scheme == "pair" else data.groupby("source").indices.values()
    for held in groups:
        held = np.atleast_1d(held)
        train = data.drop(index=data.index[held])
        test = data.iloc[held]
        y = train["T"].to_numpy(float)
        cols = out.columns.get_indexer([PREDICTOR, ROW_MEAN, SIMILARITY_ONLY])
        out.iloc[held, cols[1]] = _row_mean(train, test)
        if every:
            out.iloc[held, cols[0]] = ridge_predict(
                train[every].to_numpy(float), y, test[every].to_numpy(float)
            )
        if similar:
            out.iloc[held, cols[2]] = ridge_predict(
                train[similar].to_numpy(float), y, test[similar].to_numpy(float)
            )
    return out


def evaluate(
    deltas: pd.DataFrame,
    factors: pd.DataFrame,
    n_boot: int = N_BOOT,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """The errors table: per scheme ("leave one pair out", "leave one source out") and
    model, MAE, RMSE, Spearman's rho with the measured T and n; for the baselines,
    ``mae_diff`` (predictor's MAE minus the baseline's) with a paired bootstrap interval
    over the pairs, and a ``verdict`` on the predictor against that baseline."""
    rng = np.random.default_rng(seed)
    rows = []
    for scheme, label in (("pair", "leave one pair out"), ("source", "leave one source out")):
        pred = cross_predictions(deltas, factors, scheme)
        t = pred["T"].to_numpy(float)
        n = len(t)
        picks = rng.integers(0, max(n, 1), size=(n_boot, n))
        ours = np.abs(pred[PREDICTOR].to_numpy(float) - t)
        for model in (PREDICTOR, ROW_MEAN, SIMILARITY_ONLY):
            p = pred[model].to_numpy(float)
            rows.append(_error_row(label, model, p, t, ours, picks, level))
    return pd.DataFrame(rows, columns=ERROR_COLUMNS)


def _error_row(label, model, p, t, ours, picks, level) -> dict:
    n = len(t)
    err = np.abs(p - t)
    row = {"scheme": label, "model": model, "n": n, "verdict": "", "problem": None}
    if n == 0 or not np.isfinite(p).all():
        why = "no similarity columns (no pair_similarity)" if model == SIMILARITY_ONLY else ""
        row.update(mae=np.nan, rmse=np.nan, rho=np.nan, mae_diff=np.nan, diff_low=np.nan)
        row.update(
            diff_high=np.nan, problem=why or f"no predictions ({counted(n, 'measured pairs')})"
        )
        row["verdict"] = "not available"
        return row
    row["mae"] = float(err.mean())
    row["rmse"] = float(np.sqrt(np.mean((p - t) ** 2)))
    row["rho"] = float(rank_corr(p, t)) if n > 2 else np.nan
    if model == PREDICTOR:
        row.update(mae_diff=np.nan, diff_low=np.nan, diff_high=np.nan, verdict="the predictor")
        return row
    diff = ours - err
    boot = diff[picks].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(boot, [tail, 100 - tail])
    row.update(mae_diff=float(diff.mean()), diff_low=float(low), diff_high=float(high))
    if not np.isfinite(ours).all():
        row["verdict"], row["problem"] = "not available", "the predictor has no predictions"
    elif n < MIN_PAIRS:
        row["verdict"] = "too small to tell"
        row["problem"] = (
            f"too small to tell: {counted(n, 'measured pairs')} (at least {MIN_PAIRS} needed)"
        )
    elif high < 0:
        row["verdict"] = f"beats {model}"
    else:
        row["verdict"] = f"does not beat {model}"
    return row


def predict(
    deltas: pd.DataFrame, factors: pd.DataFrame, pairs: pd.DataFrame, level: float = LEVEL
) -> pd.DataFrame:
    """Predicted T for ``pairs`` (``source, target``), fitted on every measured pair of
    ``deltas``: ``source, target, predicted, low, high, model, n`` (n: the measured pairs
    it was fitted on). The interval adds the ``level`` percentiles of the leave-one-pair-
    out residuals (leave-one-source-out for a source with no measured pair). Without
    factor columns, the row mean (the global mean for a source never measured)."""
    if not 0 < level < 1:
        raise SoiInputError(f"level: expected a coverage between 0 and 1, got {level}")
    data = _measured(deltas, factors)
    cols = factor_columns(data)
    query = pairs[KEYS].merge(factors.drop_duplicates(KEYS), on=KEYS, how="left")
    y = data["T"].to_numpy(float)
    model = PREDICTOR if cols else ROW_MEAN
    if cols and len(data):
        values = ridge_predict(data[cols].to_numpy(float), y, query[cols].to_numpy(float))
    else:
        values = _row_mean(data, query)
    known = set(data["source"])
    low, high = np.full(len(query), np.nan), np.full(len(query), np.nan)
    for scheme, mask in (
        ("pair", query["source"].isin(known).to_numpy()),
        ("source", ~query["source"].isin(known).to_numpy()),
    ):
        if not mask.any() or len(data) < 3:
            continue
        held = cross_predictions(deltas, factors, scheme)
        resid = (held["T"] - held[model]).to_numpy(float)
        resid = resid[np.isfinite(resid)]
        if len(resid):
            tail = (1 - level) / 2 * 100
            lo, hi = np.percentile(resid, [tail, 100 - tail])
            low[mask], high[mask] = values[mask] + lo, values[mask] + hi
    out = query[KEYS].copy()
    out["predicted"], out["low"], out["high"] = values, low, high
    out["model"], out["n"] = model, len(data)
    return out


def recommend(
    target: str,
    deltas: pd.DataFrame,
    factors: pd.DataFrame | None = None,
    candidates: list[str] | None = None,
    level: float = 0.95,
    predicted_level: float = LEVEL,
) -> pd.DataFrame:
    """Candidate auxiliary members for ``target``, ranked by gain (``rank`` 1: most).
    ``deltas``: the measured per-seed T (``seed, source, target, delta``), ``factors``:
    ``pair_factors`` of the pairs (None: the row mean predicts). A measured cell gives its
    mean over seeds with a t interval (``level``), ``evidence`` "measured", ``n_seeds``;
    any other is predicted (:func:`predict`, ``evidence`` "predicted (<model>)", ``n``
    the measured pairs it learned from). Measured rows come first, then predicted ones,
    each by gain. ``candidates`` default: every member known but the target."""
    factors = factors if factors is not None else pd.DataFrame(columns=KEYS)
    known = set(deltas["source"].dropna()) | set(deltas["target"].dropna())
    known |= set(factors["source"].dropna()) | set(factors["target"].dropna())
    if target not in known:
        raise SoiInputError(f"--target: {target!r} is in no study (members: {sorted(known)})")
    if candidates is None:
        candidates = sorted(known - {target})
    unknown = [c for c in candidates if c not in known]
    if unknown:
        raise SoiInputError(f"--candidates: {unknown} in no study (members: {sorted(known)})")
    candidates = [c for c in dict.fromkeys(candidates) if c != target]
    if not candidates:
        raise SoiInputError("--candidates: no candidate other than the target")
    rows = []
    cells = deltas[(deltas["target"] == target) & deltas["delta"].notna()]
    todo = []
    for c in candidates:
        seeds = cells.loc[cells["source"] == c, "delta"].to_numpy(float)
        if len(seeds):
            mean, low, high = t_interval(seeds, level)
            rows.append([c, mean, low, high, "measured", len(seeds), len(seeds)])
        else:
            todo.append(c)
    if todo:
        pairs = pd.DataFrame({"source": todo, "target": target})
        pred = predict(deltas, factors, pairs, predicted_level)
        for r in pred.itertuples(index=False):
            rows.append([r.source, r.predicted, r.low, r.high, f"predicted ({r.model})", r.n, 0])
    out = pd.DataFrame(rows, columns=RECOMMEND_COLUMNS[1:])
    out["rank"] = out["gain"].rank(ascending=False, method="first", na_option="bottom")
    out["rank"] = out["rank"].astype(int)
    out["_m"] = out["evidence"] != "measured"
    out = out.sort_values(["_m", "gain"], ascending=[True, False], na_position="last")
    return out.drop(columns="_m")[RECOMMEND_COLUMNS].reset_index(drop=True)
