"""Dataset cartography (docs/design.md): per-example training dynamics and map regions.

Computed over the epochs each example was observed in (``matrix.py`` says what an
observation is); an example with fewer than the stated minimum of observations gets NaN
confidence, variability and correctness, so it lands in no region.

Sums run epoch by epoch in float64, in order, so the results equal, bit for bit, a plain
per-example loop over the same definitions (``tests/reference.py``); memory beyond the input is
a few vectors of N.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from soi_mlflow.analysis.matrix import MIN_OBSERVED, TraceMatrix, required_observations

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


def dynamics(tm: TraceMatrix, min_observed: int = MIN_OBSERVED) -> pd.DataFrame:
    """Per example: confidence, variability, correctness, forgetting events, first learned,
    over the epochs it was observed in (``n_observed``).

    Forgetting events count correct -> wrong between consecutive observations;
    ``first_learned_epoch`` is the (1-based) epoch of the first correct observation, 0 if
    none. Below ``required_observations(min_observed, E)`` observations confidence,
    variability and correctness are NaN. Accumulates in place over epochs and builds the
    frame without copying, so the peak memory is the output plus two vectors of N."""
    if tm.observed is not None:
        return _sparse_dynamics(tm, required_observations(min_observed, tm.n_epochs))
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
    return _frame(
        tm,
        confidence,
        variability,
        correctness,
        forgetting,
        first,
        n_correct,
        tm.correct[-1],
        tm.n_observed,
    )


def _sparse_dynamics(tm: TraceMatrix, need: int) -> pd.DataFrame:
    """``dynamics`` when some examples miss some epochs: the same sums over observations
    only (adding 0.0 for a missing one keeps every sum bit-identical to the reference)."""
    assert tm.observed is not None
    n = tm.n_examples
    n_observed = tm.n_observed
    confidence = np.zeros(n)
    for e in range(tm.n_epochs):
        confidence += np.where(tm.observed[e], tm.p_gold[e], np.float32(0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence /= n_observed
    variability = np.zeros(n)
    scratch = np.empty(n)
    for e in range(tm.n_epochs):
        np.subtract(tm.p_gold[e], confidence, out=scratch)
        scratch *= scratch
        scratch[~tm.observed[e]] = 0.0
        variability += scratch
    with np.errstate(invalid="ignore", divide="ignore"):
        variability /= n_observed
    np.sqrt(variability, out=variability)
    n_correct = np.zeros(n, dtype=np.int32)
    forgetting = np.zeros(n, dtype=np.int32)
    first = np.zeros(n, dtype=np.int32)
    last = np.zeros(n, dtype=bool)  # correctness at the latest observation so far
    for e in range(tm.n_epochs):
        seen, c = tm.observed[e], tm.correct[e] & tm.observed[e]
        n_correct += c
        forgetting += seen & last & ~c
        first[(first == 0) & c] = e + 1
        last = np.where(seen, c, last)
    with np.errstate(invalid="ignore", divide="ignore"):
        correctness = n_correct / n_observed
    too_few = n_observed < need
    for values in (confidence, variability, correctness):
        values[too_few] = np.nan
    return _frame(
        tm, confidence, variability, correctness, forgetting, first, n_correct, last, n_observed
    )


def _frame(
    tm: TraceMatrix,
    confidence: np.ndarray,
    variability: np.ndarray,
    correctness: np.ndarray,
    forgetting: np.ndarray,
    first: np.ndarray,
    n_correct: np.ndarray,
    last_correct: np.ndarray,
    n_observed: np.ndarray,
) -> pd.DataFrame:
    columns = {
        "example_id": tm.example_id,
        "member": tm.member,
        "confidence": confidence,
        "variability": variability,
        "correctness": correctness,
        "forgetting_events": forgetting,
        "first_learned_epoch": first,
        "n_correct": n_correct,
        "last_correct": last_correct,
        "n_observed": n_observed,
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


def forgetting_rank(frame: pd.DataFrame) -> np.ndarray:
    """Forgetting events as a score to rank examples by (higher: more forgettable).

    An example observed often enough but never correct has no correct -> wrong
    transition, so its count is 0; ranked by the count it would look like the most
    stable example. Following Toneva et al. (2019), who count unlearned examples as
    forgotten infinitely often, it scores ``inf``: above every learned example. An example
    with too few observations (NaN ``correctness``) scores NaN, like its other cartography,
    so it is ranked nowhere. Every ranking by forgetting (two-stage selection, the
    forgetting detector) uses this; the ``forgetting_events`` column stays the plain count.
    """
    score = frame["forgetting_events"].to_numpy(dtype=float).copy()
    correctness = frame["correctness"].to_numpy(dtype=float)
    score[correctness == 0] = np.inf
    score[np.isnan(correctness)] = np.nan
    return score
