"""What explains where a source pushes a target's predictions (docs/studies.md, "Side
effects"): per seed and pair, the shift of the target's predictions toward the source's
class distribution, and its rank correlation with every pair factor.

A skewed source (85 % positive) that shares a head with its target pushes the target's
predictions toward positive, and a balanced source pushes a skewed target back toward
balance: the predictions move toward the class the source holds *more of than the target
does*. That class's shift (with minus alone) is the dependent variable; whether class
distributions explain it across a study's pairs is the factor table of
``transfer_factors`` with this shift in the place of T (same bootstrap over seeds and
members, same "too small to tell" below 12 pairs).

Cores on frames: :func:`source_class_shift` and :func:`shift_factor_table`; the study
logs the table as ``tables/side_effects_shift_factors`` (``analysis/side_effects.py``).
"""

from __future__ import annotations

import pandas as pd

from soi_mlflow.analysis.transfer_factors import (
    LEVEL,
    N_BOOT,
    factor_correlations,
    factor_table_problems,
)
from soi_mlflow.errors import SoiInputError

SHIFT_FACTORS = "side_effects_shift_factors"
AGAINST = "shift toward source"  # the table's ``against``: what the factors are ranked by
SHIFT_COLUMNS = ["seed", "source", "target", "toward", "delta"]
EQUAL = 1e-9  # share differences up to this are equal distributions: no direction


def leading_classes(shares: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(source, target) -> the class whose share the source's training labels exceed the
    target's by most (``class_shares``: member, label_name, share). Two members compare
    when they have a class name in common (one head); a class one of them has no example
    of counts as a share of 0. Pairs without a common class, and pairs where the source
    holds no class more than the target (equal distributions), are left out; a tie
    between classes goes to the first name in sorted order."""
    lacking = [c for c in ("member", "label_name", "share") if c not in shares.columns]
    if lacking:
        raise SoiInputError(f"shares: expected member, label_name, share (lacking {lacking})")
    table = shares.pivot_table(index="member", columns="label_name", values="share")
    table = table.reindex(sorted(table.columns, key=str), axis=1)
    out = {}
    for source in table.index:
        for target in table.index:
            a, b = table.loc[source], table.loc[target]
            if source == target or not (a.notna() & b.notna()).any():
                continue
            either = a.notna() | b.notna()
            gap = a[either].fillna(0.0) - b[either].fillna(0.0)
            if gap.max() > EQUAL:
                out[(str(source), str(target))] = str(gap.idxmax())
    return out


def source_class_shift(shift: pd.DataFrame, shares: pd.DataFrame) -> pd.DataFrame:
    """``seed, source, target, toward, delta``: for every (seed, source, target) of
    ``prediction_shift``'s per-seed frame, ``delta`` = the shift of the target's predicted
    share of ``toward``, the class the source holds more of than the target
    (:func:`leading_classes`), matched by name. Pairs without a common class (no shared
    head) and problem rows are left out."""
    lacking = [c for c in ("seed", "source", "target", "pred", "shift") if c not in shift.columns]
    if lacking:
        raise SoiInputError(
            f"shift: expected prediction_shift's columns seed, source, target, pred, shift "
            f"(lacking {lacking})"
        )
    rows = shift[shift["problem"].isna()] if "problem" in shift.columns else shift
    leading = leading_classes(shares)
    toward = [leading.get((s, t)) for s, t in zip(rows["source"], rows["target"], strict=True)]
    rows = rows.assign(toward=toward)
    rows = rows[rows["pred"].astype(str) == rows["toward"]]
    return rows.rename(columns={"shift": "delta"})[SHIFT_COLUMNS].reset_index(drop=True)


def shift_factor_table(
    shift: pd.DataFrame,
    shares: pd.DataFrame,
    factors: pd.DataFrame,
    n_boot: int = N_BOOT,
    seed: int = 0,
    level: float = LEVEL,
) -> pd.DataFrame:
    """Spearman's rho of every pair factor (``pair_factors``) with the mean shift toward
    the source's classes over seeds (:func:`source_class_shift`), with its bootstrap
    interval, n and verdict: ``factor_correlations``' table, ``against`` "shift toward
    source"."""
    deltas = source_class_shift(shift, shares)
    return factor_correlations(deltas, factors, None, n_boot, seed, level, against=AGAINST)


def shift_factor_problems(table: pd.DataFrame) -> dict[str, str]:
    """The table's not-identified rows for the study's report (``factor_table_problems``): one
    entry per reason, and one for all the constant factors."""
    constant = "the factor or the shift is constant over the study's pairs"
    return factor_table_problems(table, SHIFT_FACTORS, per_against=False, constant=constant)
