"""The straightforward per-example implementation of SOI and cartography.

Slow and obviously right: one Python loop per example over its epochs, following docs/design.md
(its SOI and cartography) word for word. Tests and ``bench/analysis_speed.py`` check the fast code
against it; it must agree exactly (same float operations in the same order). An epoch in
which the example was not observed is ``None``: every value is taken over the observed
epochs; with fewer than ``min(min_observed, epochs)`` of them, confidence, variability and
correctness are NaN and the subset is ``too_few_epochs``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

MIN_OBSERVED = 2


def example_dynamics(
    p_gold: Sequence[float | None],
    correct: Sequence[bool | None],
    min_observed: int = MIN_OBSERVED,
) -> dict[str, float | int]:
    seen = [
        (e, float(p), bool(c))
        for e, (p, c) in enumerate(zip(p_gold, correct, strict=True))
        if c is not None
    ]
    observed = len(seen)
    forgetting = 0
    first = 0
    for k, (e, _, c) in enumerate(seen):
        if k > 0 and seen[k - 1][2] and not c:
            forgetting += 1
        if c and first == 0:
            first = e + 1
    n_correct = sum(1 for _, _, c in seen if c)
    if observed < min(min_observed, len(correct)) or observed == 0:
        nan = float("nan")
        return {
            "confidence": nan,
            "variability": nan,
            "correctness": nan,
            "forgetting_events": forgetting,
            "first_learned_epoch": first,
        }
    total = 0.0
    for _, p, _ in seen:
        total += p
    confidence = total / observed
    squares = 0.0
    for _, p, _ in seen:
        d = p - confidence
        squares += d * d
    return {
        "confidence": confidence,
        "variability": math.sqrt(squares / observed),
        "correctness": n_correct / observed,
        "forgetting_events": forgetting,
        "first_learned_epoch": first,
    }


def example_soi(
    correct: Sequence[bool | None], split: int | None = None, min_observed: int = MIN_OBSERVED
) -> str:
    """The default taxonomy's subset of one correctness sequence (``None``: not observed)."""
    epochs = len(correct)
    split = math.ceil(epochs / 2) if split is None else split
    seen = [(e, bool(c)) for e, c in enumerate(correct) if c is not None]
    if len(seen) < min(min_observed, epochs) or not seen:
        return "too_few_epochs"
    values = [c for _, c in seen]
    if all(values):
        return "always_correct"
    if not any(values):
        return "never_learned"
    forgetting = any(values[k - 1] and not values[k] for k in range(1, len(values)))
    if not forgetting:
        first = next(e + 1 for e, c in seen if c)
        return "early_learned" if first <= split else "late_learned"
    return "relearned" if values[-1] else "forgotten"
