"""Traces as epoch-major matrices: the shared input of SOI and cartography.

What an epoch's trace means: one observation per example visited in that epoch; an
example visited several times in an epoch (uniform or temperature sampling over members
of unequal size) counts with its LAST visit, one not visited has no observation for that
epoch. Each epoch's file is sorted by ``example_id``; when every epoch holds the same
examples (the usual case) the columns are stacked as they are (``observed`` is None).
Otherwise every example seen in any epoch is kept: ``p_gold`` is NaN and ``correct``
False where it was not observed, and ``observed`` marks the observations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from soi_mlflow.tracking.trace_format import check_metadata, open_trace

NUMERIC = ["example_id", "gold", "pred", "p_gold"]
# SOI and cartography of an example need this many observed epochs (fewer when the run has
# fewer epochs): one observation shows no change, so it can tell no subset or variability.
MIN_OBSERVED = 2


def required_observations(min_observed: int, n_epochs: int) -> int:
    """The observed epochs an example needs: ``min_observed``, capped by the run's epochs
    (so a run that observes every example every epoch never leaves one out)."""
    if min_observed < 1:
        raise ValueError(f"min_observed must be at least 1, got {min_observed}")
    return min(min_observed, n_epochs)


@dataclass
class TraceMatrix:
    """E epochs x N examples of gold probability and correctness, plus example labels."""

    example_id: np.ndarray  # (N,) int64, sorted
    member: pd.Categorical  # (N,)
    gold: np.ndarray  # (N,) int32, from the last observation
    epochs: list[int]
    p_gold: np.ndarray  # (E, N) float32, NaN where not observed
    correct: np.ndarray  # (E, N) bool, False where not observed
    observed: np.ndarray | None = None  # (E, N) bool; None: every example in every epoch

    @property
    def n_examples(self) -> int:
        return len(self.example_id)

    @property
    def n_epochs(self) -> int:
        return len(self.epochs)

    @property
    def n_observed(self) -> np.ndarray:
        """Per example, the number of epochs it was observed in."""
        if self.observed is None:
            return np.full(self.n_examples, self.n_epochs, dtype=np.int32)
        return self.observed.sum(axis=0, dtype=np.int32)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> TraceMatrix:
        """From a long trace (schema-v1 columns, several epochs; the last of repeated rows
        of an example within an epoch counts)."""
        epochs = sorted(frame["epoch"].unique().tolist())
        parts: list[dict[str, np.ndarray]] = []
        members: list[pd.Categorical] = []
        for e in epochs:
            rows = frame[frame["epoch"] == e]
            part = {c: rows[c].to_numpy() for c in NUMERIC}
            keep = _last_visits(part["example_id"])
            member = _members(rows["member"])
            if keep is not None:
                part = {k: v[keep] for k, v in part.items()}
                member = member[keep]
            parts.append(part)
            members.append(member)
        return cls._stack(parts, epochs, lambda k: members[k])

    @classmethod
    def from_files(cls, paths: Sequence[str | Path], filesystem: Any = None) -> TraceMatrix:
        """From trace files, reading only the columns needed; ``filesystem`` (a
        ``pyarrow.fs.FileSystem``, default local paths) is where they are read from.

        Files whose metadata name the same epoch (DDP shards, given in rank order) are one
        epoch: their rows are joined, and an example repeated counts with its last row."""
        groups: dict[int, list[int]] = {}
        tables, footers = [], []
        for i, path in enumerate(paths):
            with open_trace(path, filesystem) as pf:
                epoch = int(check_metadata(path, pf).get("epoch", i))
                tables.append(pf.read(columns=NUMERIC))
                footers.append(pf.metadata)
            groups.setdefault(epoch, []).append(i)
        epochs = sorted(groups)
        parts, fixes = [], []
        for e in epochs:
            files = groups[e]
            part = {
                c: np.concatenate([tables[i].column(c).to_numpy() for i in files]) for c in NUMERIC
            }
            keep = _last_visits(part["example_id"])
            if keep is not None:
                part = {k: v[keep] for k, v in part.items()}
            parts.append(part)
            fixes.append(keep)
        del tables

        def member(k: int) -> pd.Categorical:
            columns = []
            for i in groups[epochs[k]]:
                with open_trace(paths[i], filesystem, footers[i]) as pf:
                    columns.append(pf.read(columns=["member"]).column("member"))
            chunks = [chunk for column in columns for chunk in column.chunks]
            values = pd.Categorical(pa.chunked_array(chunks, columns[0].type).to_pandas())
            return values if fixes[k] is None else values[fixes[k]]

        return cls._stack(parts, epochs, member)

    @classmethod
    def _stack(
        cls,
        parts: list[dict[str, np.ndarray]],
        epochs: list[int],
        member_of: Callable[[int], pd.Categorical | np.ndarray],
    ) -> TraceMatrix:
        """``member_of(k)``: the member column of part k (read only when needed)."""
        if not parts:
            raise ValueError("no trace epochs to analyse")
        ids = parts[0]["example_id"]
        if all(np.array_equal(p["example_id"], ids) for p in parts):
            p_gold = np.empty((len(parts), len(ids)), dtype=np.float32)
            correct = np.empty((len(parts), len(ids)), dtype=bool)
            for e, part in enumerate(parts):
                p_gold[e] = part["p_gold"]
                np.equal(part["pred"], part["gold"], out=correct[e])
            return cls(
                example_id=np.asarray(ids, dtype=np.int64),
                member=pd.Categorical(member_of(len(parts) - 1)),
                gold=np.asarray(parts[-1]["gold"], dtype=np.int32),
                epochs=list(epochs),
                p_gold=p_gold,
                correct=correct,
            )
        union = _sorted_union([p["example_id"] for p in parts])
        shape = (len(parts), len(union))
        p_gold = np.full(shape, np.nan, dtype=np.float32)
        correct = np.zeros(shape, dtype=bool)
        observed = np.zeros(shape, dtype=bool)
        gold = np.zeros(len(union), dtype=np.int32)
        member = np.empty(len(union), dtype=object)
        for e, part in enumerate(parts):
            at = np.searchsorted(union, part["example_id"])
            p_gold[e, at] = part["p_gold"]
            correct[e, at] = part["pred"] == part["gold"]
            observed[e, at] = True
            gold[at] = part["gold"]  # later epochs overwrite: the last observation
            member[at] = np.asarray(member_of(e), dtype=object)
        return cls(
            example_id=union.astype(np.int64),
            member=pd.Categorical(member),
            gold=gold,
            epochs=list(epochs),
            p_gold=p_gold,
            correct=correct,
            observed=observed,
        )


def _members(column: pd.Series) -> pd.Categorical:
    """A member column as a categorical; a categorical one (a trace file's dictionary, as
    ``load_traces`` gives it) keeps its categories, as :meth:`TraceMatrix.from_files` does."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return pd.Categorical(column.astype(str), categories=column.cat.categories.astype(str))
    return pd.Categorical(column.astype(str))


def _sorted_union(sorted_ids: list[np.ndarray]) -> np.ndarray:
    """The sorted distinct ids of several sorted arrays (timsort merges the sorted runs
    in about linear time, far faster than hashing them)."""
    ids = np.concatenate(sorted_ids)
    ids.sort(kind="stable")
    keep = np.ones(len(ids), dtype=bool)
    keep[1:] = ids[1:] != ids[:-1]
    return ids[keep]


def _last_visits(ids: np.ndarray) -> np.ndarray | None:
    """Row positions that sort ``ids`` and keep the last of repeated ids; None when the
    rows are already sorted and unique (the usual case, checked in one pass)."""
    if len(ids) < 2 or bool(np.all(ids[1:] > ids[:-1])):
        return None
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    last = np.ones(len(ids), dtype=bool)
    last[:-1] = sorted_ids[1:] != sorted_ids[:-1]
    return order[last]
