"""Label-noise detectors from training traces, and how well they find planted noise.

Every detector gives each example a *suspicion* score (higher: more likely mislabeled):

- ``confidence``: 1 - mean gold probability over epochs (dataset cartography).
- ``aum``: minus the area under the margin, the mean over epochs of the gold logit minus
  the largest other logit (Pleiss et al. 2020), from the trace's optional ``margin``
  column; for a two-class task without it, the margin is log(p / (1 - p)) exactly.
- ``forgetting``: forgetting events (correct, then wrong); an example never learned counts
  as forgotten infinitely often, as Toneva et al. (2019) count it
  (:func:`cartography.forgetting_rank`).
- ``soi_flag``: 1 for the SOI ``never_learned`` or ``forgotten``, else 0.
- ``confident_learning``: filled by the benchmark from out-of-sample probabilities.

Scores are judged against the planted truth by AUROC, average precision and precision at
the true noise count (ties are shared: see :func:`precision_at_k`).
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pandas as pd

from soi_mlflow.analysis.cartography import forgetting_rank
from soi_mlflow.analysis.matrix import TraceMatrix
from soi_mlflow.analysis.runs import soi_frame
from soi_mlflow.errors import SoiInputError

SOI_FLAGGED = ("never_learned", "forgotten")
# p_gold is stored with 12 mantissa bits, so 1.0 stands for anything above 1 - 2**-13.
_P_CLIP = 2.0**-14


def _check(score: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    score, truth = np.asarray(score, dtype=float), np.asarray(truth, dtype=bool)
    if score.shape != truth.shape or score.ndim != 1:
        raise SoiInputError(f"scores {score.shape} and truth {truth.shape} must be equal 1-d")
    if np.isnan(score).any():
        raise SoiInputError("scores contain NaN")
    return score, truth


def auroc(score: np.ndarray, truth: np.ndarray) -> float:
    """P(a noisy example scores above a clean one), ties counting one half; NaN without
    both classes."""
    from scipy.stats import rankdata

    score, truth = _check(score, truth)
    n_pos, n_neg = int(truth.sum()), int((~truth).sum())
    if not n_pos or not n_neg:
        return float("nan")
    ranks = rankdata(score)  # average ranks: ties share
    return float((ranks[truth].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(score: np.ndarray, truth: np.ndarray) -> float:
    """Sum over distinct score thresholds of (recall gain) x precision, without
    interpolation (scikit-learn's definition); tied examples enter together."""
    score, truth = _check(score, truth)
    n_pos = int(truth.sum())
    if not n_pos:
        return float("nan")
    order = np.argsort(-score, kind="stable")
    s, t = score[order], truth[order]
    last = np.r_[s[1:] != s[:-1], True]  # the last row of each run of equal scores
    tp = np.cumsum(t)[last]
    seen = np.flatnonzero(last) + 1
    recall_gain = np.diff(np.r_[0, tp]) / n_pos
    return float(np.sum(recall_gain * tp / seen))


def precision_at_k(score: np.ndarray, truth: np.ndarray, k: int | None = None) -> float:
    """Share of noisy examples among the ``k`` highest scores (``k`` defaults to the true
    noise count). Examples tied at the cut are taken in proportion: the expected value
    under a random order of ties."""
    score, truth = _check(score, truth)
    k = int(truth.sum()) if k is None else int(k)
    if k <= 0 or k > len(score):
        return float("nan")
    cut = np.sort(score)[::-1][k - 1]
    above, at = score > cut, score == cut
    hits = truth[above].sum() + (k - above.sum()) * truth[at].mean()
    return float(hits / k)


def score_detectors(scores: pd.DataFrame, truth: np.ndarray) -> pd.DataFrame:
    """One row per detector column of ``scores``: ``auroc``, ``ap``, ``p_at_k``; and the
    share of noisy examples (``base_rate``, the AP of a random order). A column with a
    missing score (AUM without margins) is left out."""
    truth = np.asarray(truth, dtype=bool)
    rows = {}
    for name in scores.columns:
        s = scores[name].to_numpy(dtype=float)
        if np.isnan(s).any():
            continue
        rows[name] = {
            "auroc": auroc(s, truth),
            "ap": average_precision(s, truth),
            "p_at_k": precision_at_k(s, truth),
        }
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "detector"
    frame["base_rate"] = truth.mean()
    return frame


def aum_margins(trace: pd.DataFrame, binary_tasks: Collection[str] = ()) -> pd.Series:
    """Per (epoch, example) margin: the ``margin`` column, or for ``binary_tasks``
    log(p / (1 - p)) of ``p_gold`` (p clipped by the storage precision); NaN otherwise."""
    if "margin" in trace.columns:
        margin = trace["margin"].astype(float)
    else:
        margin = pd.Series(np.nan, index=trace.index)
    p = trace["p_gold"].to_numpy(dtype=float).clip(_P_CLIP, 1 - _P_CLIP)
    derivable = margin.isna().to_numpy() & trace["task"].astype(str).isin(binary_tasks).to_numpy()
    values = margin.to_numpy().copy()
    values[derivable] = np.log(p[derivable] / (1 - p[derivable]))
    return pd.Series(values, index=trace.index, name="margin")


def detector_scores(
    trace: pd.DataFrame, binary_tasks: Collection[str] = (), taxonomy: str = "default"
) -> pd.DataFrame:
    """Suspicion scores of every example of a long training trace (schema v1 columns,
    ``margin`` optional), one row per example sorted by id: ``example_id``, ``member``,
    then one column per trace detector."""
    tm = TraceMatrix.from_frame(trace)
    frame = soi_frame(tm, taxonomy)
    forgetting = forgetting_rank(frame)  # never learned: inf, above any learned example
    margins = aum_margins(trace, binary_tasks)
    aum = margins.groupby(trace["example_id"].to_numpy()).mean().reindex(tm.example_id)
    return pd.DataFrame(
        {
            "example_id": tm.example_id,
            "member": np.asarray(tm.member),
            "confidence": 1.0 - frame["confidence"].to_numpy(),
            "aum": -aum.to_numpy(),
            "forgetting": forgetting,
            "soi_flag": frame["soi"].astype(str).isin(SOI_FLAGGED).to_numpy(dtype=float),
        }
    )


def confident_learning(labels: np.ndarray, pred_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Confident learning (Northcutt et al. 2021) through cleanlab's ``find_label_issues``
    on out-of-sample probabilities ``pred_probs`` (N, C): the boolean issue mask, and a
    suspicion score that ranks the flagged examples first, each group by 1 - the
    probability of the given label (cleanlab's self-confidence)."""
    try:
        from cleanlab.filter import find_label_issues
    except ImportError as exc:  # an optional extra
        raise SoiInputError(
            "confident learning needs cleanlab: pip install 'soi-mlflow[noise]' "
            "(or set the benchmark's cl_folds to 0)"
        ) from exc
    labels = np.asarray(labels, dtype=int)
    pred_probs = np.asarray(pred_probs, dtype=float)
    if pred_probs.ndim != 2 or len(pred_probs) != len(labels):
        raise SoiInputError(
            f"pred_probs must be (N, C) with N = {len(labels)} labels, got {pred_probs.shape}"
        )
    # n_jobs=1: cleanlab's default forks a multiprocessing pool, and forking a process
    # that runs threads (torch's, the spool writer's, MLflow's telemetry) can deadlock
    # the child: the benchmark then hung until pytest's timeout
    issues = find_label_issues(labels, pred_probs, n_jobs=1)
    self_confidence = pred_probs[np.arange(len(labels)), labels]
    return issues, issues + (1.0 - self_confidence)
