"""What auxiliary data is worth in target examples, per seed, and how pairs combine.

Input: a learning-curve points table with one row per trained run: ``seed``, ``n``
(target examples), ``curve`` (``"alone"`` or the auxiliary set, members joined by
``+``), ``aux_size`` (examples per auxiliary member, 0 alone) and ``score``.

For each seed, the target-alone points of that seed are fitted (power law or exponential,
``curves.best_fit``) and each auxiliary point's score is inverted on that curve: the
auxiliary data is worth ``n_eq - n`` target examples, where the target alone reaches the
same score at ``n_eq``. Worth is clipped below at ``-n``; a score the alone curve only
reaches beyond ``ceiling`` (or never: near its plateau the inversion explodes) gives NaN
with ``beyond_curve`` set, and is left out of the intervals (its count is reported). Each
seed gives one value per estimate, and ``intervals.summarize`` gives the interval over
seeds. Across sizes, each seed's median is taken: robust to the one size where the alone
curve is flat.

Pairwise and contextual transfer: with auxiliary members a and b, ``a`` and ``b`` are the
pairwise sets (target + one) and ``a+b`` the contextual set (target + all). The
interaction is ``worth(a+b) - worth(a) - worth(b)`` per seed and size: positive when the
whole is worth more than the sum of the pairs, zero when transfer is additive.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from soi_mlflow.analysis.curves import best_fit, worth_from_curve
from soi_mlflow.analysis.intervals import summarize
from soi_mlflow.errors import SoiInputError

ALONE = "alone"
CEILING_FACTOR = 10  # worth is clipped at CEILING_FACTOR x the largest target size


def seed_worth(points: pd.DataFrame, ceiling: float | None = None) -> pd.DataFrame:
    """One row per auxiliary point: its seed's alone-curve inversion as ``worth``."""
    need = {"seed", "n", "curve", "aux_size", "score"}
    missing = need - set(points.columns)
    if missing:
        raise SoiInputError(f"learning-curve points lack the columns {sorted(missing)}")
    ceiling = ceiling if ceiling is not None else CEILING_FACTOR * float(points["n"].max())
    rows = []
    for seed, part in points.groupby("seed", sort=True):
        alone = part[part["curve"] == ALONE].groupby("n")["score"].mean()
        if len(alone) < 3:
            raise SoiInputError(
                f"seed {seed}: the target-alone curve needs at least 3 sizes to invert"
            )
        try:
            fit = best_fit(alone.index.to_numpy(float), alone.to_numpy(float))
        except SoiInputError:  # no curve through this seed's points: no worth for it
            fit = None
        aux = part[part["curve"] != ALONE]
        for row in aux.itertuples(index=False):
            if fit is None:
                rows.append(
                    {
                        "seed": seed,
                        "curve": row.curve,
                        "aux_size": int(row.aux_size),
                        "n": int(row.n),
                        "score": float(row.score),
                        "score_alone_fit": np.nan,
                        "worth": np.nan,
                        "beyond_curve": False,
                    }
                )
                continue
            worth = worth_from_curve(fit, float(row.n), float(row.score))
            rows.append(
                {
                    "seed": seed,
                    "curve": row.curve,
                    "aux_size": int(row.aux_size),
                    "n": int(row.n),
                    "score": float(row.score),
                    "score_alone_fit": float(fit.predict(row.n)),
                    "worth": float(max(worth, -float(row.n))) if worth <= ceiling else np.nan,
                    "beyond_curve": bool(worth > ceiling),
                }
            )
    return pd.DataFrame(rows)


def interaction(worth: pd.DataFrame, pairs: list[str], whole: str) -> pd.DataFrame:
    """Per seed, size and auxiliary size: ``worth(whole) - sum of worth(pairs)``."""
    table = worth.pivot_table(
        index=["seed", "n", "aux_size"], columns="curve", values="worth", aggfunc="mean"
    )
    missing = [c for c in (*pairs, whole) if c not in table.columns]
    if missing:
        raise SoiInputError(f"the interaction needs worth estimates of {missing}")
    out = table[[*pairs, whole]].copy()  # NaN where a part lies beyond the curve
    out["sum_of_pairs"] = out[pairs].sum(axis=1, skipna=False)
    out["whole"] = out[whole]
    out["interaction"] = out["whole"] - out["sum_of_pairs"]
    return out[["whole", "sum_of_pairs", "interaction"]].reset_index()


def transfer_summary(
    points: pd.DataFrame,
    aux_members: list[str],
    method: str = "t",
    level: float = 0.95,
) -> dict[str, pd.DataFrame]:
    """Worth per set, size and auxiliary size with intervals over seeds; with two or more
    auxiliary members and their pairs measured, the interaction too (per size and as
    each seed's median over sizes, each with its interval)."""
    worth = seed_worth(points)
    out = {
        "worth_by_seed": worth,
        "worth": summarize(worth, ["curve", "aux_size", "n"], "worth", method, level),
    }
    per_seed = worth.groupby(["seed", "curve", "aux_size"], as_index=False)["worth"].median()
    out["worth_over_sizes"] = summarize(per_seed, ["curve", "aux_size"], "worth", method, level)
    beyond = worth.groupby(["curve", "aux_size", "n"])["beyond_curve"].sum().to_numpy()
    out["worth"]["beyond_curve"] = beyond.astype(int)
    whole = "+".join(aux_members)
    curves = set(worth["curve"])
    if len(aux_members) >= 2 and whole in curves and all(a in curves for a in aux_members):
        inter = interaction(worth, aux_members, whole)
        out["interaction_by_seed"] = inter
        out["interaction"] = summarize(inter, ["aux_size", "n"], "interaction", method, level)
        median = inter.groupby(["seed", "aux_size"], as_index=False)["interaction"].median()
        out["interaction_over_sizes"] = summarize(
            median, ["aux_size"], "interaction", method, level
        )
    return out
