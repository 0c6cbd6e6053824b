"""The factors of a member that come from its own single run, not from its data:
``difficulty_error`` (1 - test accuracy), ``never_learned_share`` and ``noise_share`` from
its training trace (docs/studies.md, "Member profiles"), joined onto the data profiles of
:mod:`~soi_mlflow.analysis.profiles`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from soi_mlflow.analysis.from_traces import soi_frame
from soi_mlflow.analysis.matrix import TraceMatrix
from soi_mlflow.analysis.runs import load_traces
from soi_mlflow.errors import SoiInputError

NOISE_THRESHOLD = 0.5  # noise_share: mean gold probability over epochs below this
RUN_COLUMNS = ("difficulty_error", "never_learned_share", "noise_share")


def trace_factors(trace: pd.DataFrame) -> dict[str, float]:
    """``never_learned_share`` (SOI ``never_learned``, default taxonomy) and
    ``noise_share`` (the ``confidence`` detector of :mod:`~soi_mlflow.analysis.noise`,
    the best by average precision in docs/noise.md: share of examples whose mean gold
    probability over epochs is below :data:`NOISE_THRESHOLD`) of one training trace."""
    frame = soi_frame(TraceMatrix.from_frame(trace))
    return {
        "never_learned_share": float((frame["soi"].astype(str) == "never_learned").mean()),
        "noise_share": float((frame["confidence"].to_numpy() < NOISE_THRESHOLD).mean()),
    }


def single_run_factors(scores: pd.DataFrame, tracking_uri: str | None = None) -> pd.DataFrame:
    """Per member, from its runs alone (``scores`` rows with no source: the transfer
    study's per-seed scores frame): ``difficulty_error`` (1 - test accuracy) and the
    :func:`trace_factors` of each run's training trace, means over seeds."""
    alone = scores[scores["source"].isna()]
    rows = []
    for target, run_id, score in zip(alone["target"], alone["run_id"], alone["score"], strict=True):
        row = {"member": target, "difficulty_error": 1.0 - float(score)}
        try:
            row.update(trace_factors(load_traces(run_id, "train", tracking_uri)))
        except SoiInputError:  # a run without a training trace: those factors are NaN
            row.update(dict.fromkeys(RUN_COLUMNS[1:], np.nan))
        rows.append(row)
    if not rows:
        return pd.DataFrame(columns=list(RUN_COLUMNS), index=pd.Index([], name="member"))
    return pd.DataFrame(rows).groupby("member", sort=False)[list(RUN_COLUMNS)].mean()


def with_run_factors(profiles: pd.DataFrame, factors: pd.DataFrame) -> pd.DataFrame:
    """``profiles`` with the :data:`RUN_COLUMNS` of ``factors`` (indexed by member)
    joined on (NaN for a member without them)."""
    return profiles.join(factors.reindex(columns=list(RUN_COLUMNS)), how="left")
