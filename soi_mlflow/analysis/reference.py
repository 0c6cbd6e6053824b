"""The straightforward per-example implementation of SOI and cartography.

Slow and obviously right: one Python loop per example over its epochs, following DESIGN
2.2 and 2.3 word for word. Tests and ``bench/analysis_speed.py`` check the fast code
against it; it must agree exactly (same float operations in the same order).
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def example_dynamics(p_gold: Sequence[float], correct: Sequence[bool]) -> dict[str, float | int]:
    epochs = len(p_gold)
    total = 0.0
    for p in p_gold:
        total += float(p)
    confidence = total / epochs
    squares = 0.0
    for p in p_gold:
        d = float(p) - confidence
        squares += d * d
    forgetting = 0
    first = 0
    for e, c in enumerate(correct):
        if e > 0 and correct[e - 1] and not c:
            forgetting += 1
        if c and first == 0:
            first = e + 1
    n_correct = sum(1 for c in correct if c)
    return {
        "confidence": confidence,
        "variability": math.sqrt(squares / epochs),
        "correctness": n_correct / epochs,
        "forgetting_events": forgetting,
        "first_learned_epoch": first,
    }


def example_soi(correct: Sequence[bool], split: int | None = None) -> str:
    """The default taxonomy's subset of one correctness sequence."""
    epochs = len(correct)
    split = math.ceil(epochs / 2) if split is None else split
    if all(correct):
        return "always_correct"
    if not any(correct):
        return "never_learned"
    forgetting = any(correct[e - 1] and not correct[e] for e in range(1, epochs))
    if not forgetting:
        first = next(e + 1 for e, c in enumerate(correct) if c)
        return "early_learned" if first <= split else "late_learned"
    return "relearned" if correct[-1] else "forgotten"
