"""Traces as epoch-major matrices: the shared input of SOI and cartography.

Each epoch's file is sorted by ``example_id``; when every epoch holds the same examples
(the usual case) the columns are stacked as they are. Otherwise only the examples present
in every epoch are kept, and how many were dropped is recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from soi_mlflow.tracking.trace_format import read_metadata

NUMERIC = ["example_id", "gold", "pred", "p_gold"]


@dataclass
class TraceMatrix:
    """E epochs x N examples of gold probability and correctness, plus example labels."""

    example_id: np.ndarray  # (N,) int64, sorted
    member: pd.Categorical  # (N,)
    gold: np.ndarray  # (N,) int32, from the last epoch
    epochs: list[int]
    p_gold: np.ndarray  # (E, N) float32
    correct: np.ndarray  # (E, N) bool
    dropped: int = 0  # examples missing from some epoch, left out

    @property
    def n_examples(self) -> int:
        return len(self.example_id)

    @property
    def n_epochs(self) -> int:
        return len(self.epochs)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> TraceMatrix:
        """From a long trace (schema-v1 columns, several epochs)."""
        epochs = sorted(frame["epoch"].unique().tolist())
        parts = [_columns(frame[frame["epoch"] == e].sort_values("example_id")) for e in epochs]
        member = frame[frame["epoch"] == epochs[-1]].sort_values("example_id")["member"]
        return cls._stack(parts, epochs, member)

    @classmethod
    def from_files(cls, paths: Sequence[str | Path]) -> TraceMatrix:
        """From one trace file per epoch, reading only the columns needed."""
        parts, epochs = [], []
        for path in paths:
            epochs.append(int(read_metadata(path).get("epoch", len(epochs))))
            table = pq.read_table(path, columns=NUMERIC)
            parts.append({c: table.column(c).to_numpy() for c in NUMERIC})
        order = np.argsort(epochs, kind="stable")
        last = paths[order[-1]]
        member = pq.read_table(last, columns=["member"]).column("member").to_pandas()
        return cls._stack([parts[i] for i in order], [epochs[i] for i in order], member)

    @classmethod
    def _stack(
        cls, parts: list[dict[str, np.ndarray]], epochs: list[int], member: pd.Series
    ) -> TraceMatrix:
        if not parts:
            raise ValueError("no trace epochs to analyse")
        ids = parts[0]["example_id"]
        same = all(np.array_equal(p["example_id"], ids) for p in parts)
        dropped = 0
        member_values = np.asarray(member)
        if not same:
            common = ids
            for p in parts[1:]:
                common = np.intersect1d(common, p["example_id"], assume_unique=True)
            dropped = len(np.unique(np.concatenate([p["example_id"] for p in parts]))) - len(common)
            member_values = member_values[np.isin(parts[-1]["example_id"], common)]
            parts = [{k: v[np.isin(p["example_id"], common)] for k, v in p.items()} for p in parts]
            ids = common
        p_gold = np.empty((len(parts), len(ids)), dtype=np.float32)
        correct = np.empty((len(parts), len(ids)), dtype=bool)
        for e, part in enumerate(parts):
            p_gold[e] = part["p_gold"]
            np.equal(part["pred"], part["gold"], out=correct[e])
        return cls(
            example_id=np.asarray(ids, dtype=np.int64),
            member=pd.Categorical(
                member_values.astype(str) if member_values.dtype != object else member_values
            ),
            gold=np.asarray(parts[-1]["gold"], dtype=np.int32),
            epochs=list(epochs),
            p_gold=p_gold,
            correct=correct,
            dropped=dropped,
        )


def _columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    return {c: frame[c].to_numpy() for c in NUMERIC}
