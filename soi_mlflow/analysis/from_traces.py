"""SOI tables from traces in hand: data in, a table out, no MLflow (as cleanlab's
``find_label_issues(labels, pred_probs)``).

:func:`soi_from_traces` takes a long table of traces, one row per example and epoch, as a
pandas DataFrame or a pyarrow Table (anything with ``to_pandas()``):

- ``example_id`` (integers), ``epoch`` and ``p_gold`` (the gold class's probability);
- ``correct`` (bool), or ``pred`` and ``gold`` (correct where they are equal);
- optionally ``member`` (the source of each example; ``default`` when absent).

It returns what ``soi_table(run_id)`` returns for a run holding those traces: one row per
example with its subset, cartography (confidence, variability, correctness) and
forgetting events. ``soi_table`` is a thin wrapper: it reads the run's traces and calls
the same core, :func:`soi_from_matrix`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from soi_mlflow.analysis.cartography import dynamics
from soi_mlflow.analysis.matrix import MIN_OBSERVED, TraceMatrix, required_observations
from soi_mlflow.analysis.soi import TOO_FEW, Taxonomy, assign, get_taxonomy
from soi_mlflow.errors import SoiInputError

DEFAULT_MEMBER = "default"  # the recorder's member when none is given
NEEDED = ("example_id", "epoch", "p_gold")


def soi_from_traces(
    traces: Any,
    taxonomy: str | Taxonomy = "default",
    split_epoch: int | None = None,
    min_observed: int = MIN_OBSERVED,
    examples: Any = None,
) -> pd.DataFrame:
    """Per example: ``example_id, member, soi, confidence, variability, correctness,
    forgetting_events, first_learned_epoch, n_correct, last_correct, n_observed``.

    ``traces``: see the module's docstring; when an example has several rows in one epoch
    the last counts. ``examples``: optionally every example of the split (``example_id``,
    optional ``member``); those no trace holds are rows in ``too_few_epochs``, as in
    ``soi_table``. Examples observed in fewer than ``min_observed`` epochs are in
    ``too_few_epochs`` with NaN cartography. ``split_epoch``: between early and late
    learning (default ceil(epochs / 2))."""
    get_taxonomy(taxonomy)
    tm = TraceMatrix.from_frame(trace_columns(as_frame(traces, "traces")))
    listed = None if examples is None else example_members(as_frame(examples, "examples"))
    return soi_from_matrix(tm, taxonomy, split_epoch, min_observed, listed)


def soi_from_matrix(
    tm: TraceMatrix,
    taxonomy: str | Taxonomy = "default",
    split_epoch: int | None = None,
    min_observed: int = MIN_OBSERVED,
    examples: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The core of :func:`soi_from_traces` and ``soi_table``, over a trace matrix;
    ``examples`` (``example_id``, ``member``) adds the examples never traced."""
    frame = dynamics(tm, min_observed)
    return soi_from_dynamics(frame, tm.n_epochs, taxonomy, split_epoch, min_observed, examples)


def soi_from_dynamics(
    frame: pd.DataFrame,
    n_epochs: int,
    taxonomy: str | Taxonomy = "default",
    split_epoch: int | None = None,
    min_observed: int = MIN_OBSERVED,
    examples: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The SOI table from per-example dynamics (``cartography.dynamics``'s columns, from
    the in-memory path or DuckDB's) of a run of ``n_epochs`` epochs."""
    frame.insert(2, "soi", assign(frame, n_epochs, taxonomy, split_epoch, min_observed))
    extra = None if examples is None else never_traced(frame, examples)
    if extra is not None:
        members = sorted(set(frame["member"].astype(str)) | set(extra["member"]))
        soi = frame["soi"].cat.categories
        frame = pd.concat([frame, extra], ignore_index=True)
        frame["member"] = pd.Categorical(frame["member"].astype(str), categories=members)
        frame["soi"] = pd.Categorical(frame["soi"].astype(str), categories=soi)
        frame = frame.sort_values("example_id", ignore_index=True)
    frame.attrs |= {
        "epochs": n_epochs,
        "min_observed": required_observations(min_observed, n_epochs),
    }
    return frame


def soi_frame(
    tm: TraceMatrix,
    taxonomy: str | Taxonomy = "default",
    split_epoch: int | None = None,
    min_observed: int = MIN_OBSERVED,
) -> pd.DataFrame:
    """SOI and cartography of every example of a trace matrix, over its observed epochs."""
    frame = dynamics(tm, min_observed)
    frame.insert(2, "soi", assign(frame, tm.n_epochs, taxonomy, split_epoch, min_observed))
    return frame


def as_frame(data: Any, what: str) -> pd.DataFrame:
    """A pandas DataFrame of ``data`` (a DataFrame, or a table with ``to_pandas()``)."""
    if isinstance(data, pd.DataFrame):
        return data
    if callable(getattr(data, "to_pandas", None)):
        return data.to_pandas()
    raise SoiInputError(
        f"{what} must be a pandas DataFrame or a pyarrow Table, got {type(data).__name__}"
    )


def _require(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SoiInputError(
            f"{what} lack column(s) {', '.join(missing)}; they have: "
            f"{', '.join(map(str, frame.columns)) or 'none'}"
        )
    for column in columns:
        if frame[column].isna().any():
            n = int(frame[column].isna().sum())
            raise SoiInputError(f"{what}: column {column} has {n} missing value(s)")
    ids = frame["example_id"]
    if not (pd.api.types.is_integer_dtype(ids) and not pd.api.types.is_bool_dtype(ids)):
        raise SoiInputError(
            f"{what}: example_id must be integers, got {ids.dtype} (map your ids to integers)"
        )


def trace_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns a trace matrix is built from, from a user's long trace table."""
    if frame.empty:
        raise SoiInputError("traces: the table has no rows")
    outcome = ["correct"] if "correct" in frame.columns else ["pred", "gold"]
    _require(frame, [*NEEDED, *outcome], "traces")
    if "correct" in frame.columns:
        gold = frame["gold"].to_numpy() if "gold" in frame.columns else np.zeros(len(frame))
        gold = gold.astype(np.int64)
        pred = np.where(frame["correct"].to_numpy(dtype=bool), gold, gold + 1)
    else:
        gold, pred = frame["gold"].to_numpy(), frame["pred"].to_numpy()
    member = frame["member"] if "member" in frame.columns else DEFAULT_MEMBER
    columns = {
        "example_id": frame["example_id"].to_numpy(dtype=np.int64),
        "epoch": frame["epoch"].to_numpy(),
        "member": member,
        "gold": gold,
        "pred": pred,
        "p_gold": frame["p_gold"].to_numpy(dtype=np.float32),
    }
    return pd.DataFrame(columns, index=frame.index)


def example_members(frame: pd.DataFrame) -> pd.DataFrame:
    """``example_id`` and ``member`` (``default`` when absent) of an example table."""
    _require(frame, ["example_id"], "examples")
    if "member" not in frame.columns:
        return pd.DataFrame({"example_id": frame["example_id"], "member": DEFAULT_MEMBER})
    return frame[["example_id", "member"]]


def never_traced(frame: pd.DataFrame, examples: pd.DataFrame) -> pd.DataFrame | None:
    """Rows for the listed examples that no trace epoch holds (a sampler never visited
    them), in ``too_few_epochs``; None when there are none."""
    missing = examples[~examples["example_id"].isin(frame["example_id"])]
    if missing.empty:
        return None
    n = len(missing)
    rows = {
        "example_id": missing["example_id"].to_numpy(dtype=np.int64),
        "member": missing["member"].astype(str).to_numpy(),
        "soi": TOO_FEW,
        "confidence": np.nan,
        "variability": np.nan,
        "correctness": np.nan,
        "forgetting_events": np.zeros(n, dtype=np.int32),
        "first_learned_epoch": np.zeros(n, dtype=np.int32),
        "n_correct": np.zeros(n, dtype=np.int32),
        "last_correct": np.zeros(n, dtype=bool),
        "n_observed": np.zeros(n, dtype=np.int32),
    }
    return pd.DataFrame(rows)[frame.columns]
