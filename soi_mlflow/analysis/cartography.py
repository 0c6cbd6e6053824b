"""Dataset cartography (DESIGN 2.3): per-example training dynamics and map regions.

Sums run epoch by epoch in float64, in order, so the results equal, bit for bit, a plain
per-example loop over the same definitions (``reference.py``); memory beyond the input is
a few vectors of N.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from soi_mlflow.analysis.matrix import TraceMatrix

REGIONS = ("easy_to_learn", "ambiguous", "hard_to_learn")


@dataclass(frozen=True)
class RegionThresholds:
    """Map regions (documented defaults; Swayamdipta et al. use similar cut-offs).

    ambiguous: variability >= ``ambiguous_variability``; otherwise easy-to-learn when
    confidence >= ``easy_confidence``, hard-to-learn when confidence <= ``hard_confidence``;
    anything else is left unassigned (empty string).
    """

    ambiguous_variability: float = 0.2
    easy_confidence: float = 0.5
    hard_confidence: float = 0.5

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def dynamics(tm: TraceMatrix) -> pd.DataFrame:
    """Per example: confidence, variability, correctness, forgetting events, first learned.

    Accumulates in place over epochs and builds the frame without copying, so the peak
    memory is the output plus two vectors of N."""
    n, e_count = tm.n_examples, tm.n_epochs
    confidence = np.zeros(n)
    for e in range(e_count):
        confidence += tm.p_gold[e]
    confidence /= e_count
    variability = np.zeros(n)
    scratch = np.empty(n)
    for e in range(e_count):
        np.subtract(tm.p_gold[e], confidence, out=scratch)
        scratch *= scratch
        variability += scratch
    variability /= e_count
    np.sqrt(variability, out=variability)
    del scratch
    n_correct = np.zeros(n, dtype=np.int32)
    forgetting = np.zeros(n, dtype=np.int32)
    first = np.zeros(n, dtype=np.int32)  # 1-based epoch of the first correct one; 0: never
    for e in range(e_count):
        c = tm.correct[e]
        n_correct += c
        if e:
            forgetting += tm.correct[e - 1] > c  # correct, then wrong: a forgetting event
        first[(first == 0) & c] = e + 1
    correctness = n_correct / e_count
    columns = {
        "example_id": tm.example_id,
        "member": tm.member,
        "confidence": confidence,
        "variability": variability,
        "correctness": correctness,
        "forgetting_events": forgetting,
        "first_learned_epoch": first,
        "n_correct": n_correct,
        "last_correct": tm.correct[-1],
    }
    return pd.DataFrame(columns, copy=False)


DEFAULT_THRESHOLDS = RegionThresholds()


def regions(frame: pd.DataFrame, thresholds: RegionThresholds = DEFAULT_THRESHOLDS) -> pd.Series:
    """The cartography region of each row of ``dynamics`` output."""
    conf, var = frame["confidence"].to_numpy(), frame["variability"].to_numpy()
    out = np.full(len(frame), "", dtype=object)
    ambiguous = var >= thresholds.ambiguous_variability
    out[~ambiguous & (conf >= thresholds.easy_confidence)] = "easy_to_learn"
    out[~ambiguous & (conf <= thresholds.hard_confidence) & (conf < thresholds.easy_confidence)] = (
        "hard_to_learn"
    )
    out[ambiguous] = "ambiguous"
    return pd.Series(
        pd.Categorical(out, categories=["", *REGIONS]), index=frame.index, name="region"
    )
