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

What the curves do not determine (no alone fit for a seed, a score beyond the alone
curve, an interaction whose parts are not all identified) is NaN with "not identified:
<reason>" in a ``problem`` column, never an error.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from soi_mlflow.analysis.curves import best_fit, worth_from_curve
from soi_mlflow.analysis.identified import (
    ESTIMATION_ERRORS,
    PROBLEM,
    is_reported,
    with_problems,
)
from soi_mlflow.analysis.identified import reasons as _reasons
from soi_mlflow.analysis.intervals import summarize
from soi_mlflow.errors import SoiInputError

ALONE = "alone"
CEILING_FACTOR = 10  # worth is clipped at CEILING_FACTOR x the largest target size
WORTH_COLUMNS = [
    "seed", "curve", "aux_size", "n", "score", "score_alone_fit", "worth", "beyond_curve",
    PROBLEM,
]  # fmt: skip


def _alone_fit(seed, alone: pd.Series) -> tuple[object, str | None]:
    """This seed's target-alone fit, or None and why there is none."""
    if len(alone) < 3:
        return None, (
            f"seed {seed}: the target-alone curve has {len(alone)} size(s); inverting it "
            "needs at least 3"
        )
    try:
        return best_fit(alone.index.to_numpy(float), alone.to_numpy(float)), None
    except ESTIMATION_ERRORS as err:  # no curve through this seed's points
        return None, f"seed {seed}: no target-alone curve to invert ({err})"


def seed_worth(points: pd.DataFrame, ceiling: float | None = None) -> pd.DataFrame:
    """One row per auxiliary point: its seed's alone-curve inversion as ``worth``; NaN
    with the reason in ``problem`` where the alone curve does not determine it."""
    need = {"seed", "n", "curve", "aux_size", "score"}
    missing = need - set(points.columns)
    if missing:
        raise SoiInputError(f"learning-curve points lack the columns {sorted(missing)}")
    ceiling = ceiling if ceiling is not None else CEILING_FACTOR * float(points["n"].max())
    beyond = (
        f"the target alone does not reach this score below {ceiling:g} examples (beyond its curve)"
    )
    rows = []
    for seed, part in points.groupby("seed", sort=True):
        fit, why = _alone_fit(seed, part[part["curve"] == ALONE].groupby("n")["score"].mean())
        for row in part[part["curve"] != ALONE].itertuples(index=False):
            out = {
                "seed": seed,
                "curve": row.curve,
                "aux_size": int(row.aux_size),
                "n": int(row.n),
                "score": float(row.score),
                "score_alone_fit": np.nan,
                "worth": np.nan,
                "beyond_curve": False,
                PROBLEM: why,
            }
            if fit is not None:
                worth = worth_from_curve(fit, float(row.n), float(row.score))
                out["score_alone_fit"] = float(fit.predict(row.n))
                if worth <= ceiling:
                    out["worth"] = float(max(worth, -float(row.n)))
                else:
                    out |= {"beyond_curve": True, PROBLEM: beyond}
            rows.append(out)
    return pd.DataFrame(rows, columns=WORTH_COLUMNS)


def interaction(worth: pd.DataFrame, pairs: list[str], whole: str) -> pd.DataFrame:
    """Per seed, size and auxiliary size: ``worth(whole) - sum of worth(pairs)``; NaN with
    the reason in ``problem`` where a part's worth is not identified."""
    missing = [c for c in (*pairs, whole) if c not in set(worth["curve"])]
    if missing:  # a set that was never trained: a caller's mistake, not the data's
        raise SoiInputError(f"the interaction needs worth estimates of {missing}")
    keys = ["seed", "n", "aux_size"]
    table = worth.groupby([*keys, "curve"])["worth"].mean().unstack("curve")
    why = worth.groupby([*keys, "curve"])[PROBLEM].agg(_reasons).unstack("curve")
    out = table[[*pairs, whole]].copy()
    out["sum_of_pairs"] = out[pairs].sum(axis=1, skipna=False)
    out["whole"] = out[whole]
    out["interaction"] = out["whole"] - out["sum_of_pairs"]
    problems = []
    for key, row in out.iterrows():
        absent: dict[str, list[str]] = {}  # reason -> the parts it holds for
        for c in (*pairs, whole):
            if not np.isfinite(row[c]):
                absent.setdefault(_why(why, key, c), []).append(c)
        problems.append(
            None
            if not absent
            else "the interaction needs the worth of every part; "
            + "; ".join(f"worth of {', '.join(cs)}: {r}" for r, cs in absent.items())
        )
    out[PROBLEM] = problems
    out.columns.name = None
    return out[["whole", "sum_of_pairs", "interaction", PROBLEM]].reset_index()


def _why(why: pd.DataFrame, key, curve: str) -> str:
    reason = why.loc[key, curve] if key in why.index else None
    return reason if is_reported(reason) else "not measured at this size"


def transfer_summary(
    points: pd.DataFrame,
    aux_members: list[str],
    method: str = "t",
    level: float = 0.95,
) -> dict[str, pd.DataFrame]:
    """Worth per set, size and auxiliary size with intervals over seeds; with two or more
    auxiliary members and their pairs measured, the interaction too (per size and as
    each seed's median over sizes, each with its interval). What the data do not
    determine is NaN with "not identified: <reason>" in the ``problem`` column."""
    worth = seed_worth(points)
    by = ["curve", "aux_size", "n"]
    out = {
        "worth_by_seed": worth,
        "worth": with_problems(summarize(worth, by, "worth", method, level), worth, by, "worth"),
    }
    per_seed = _median(worth, ["seed", "curve", "aux_size"], "worth")
    out["worth_over_sizes"] = with_problems(
        summarize(per_seed, ["curve", "aux_size"], "worth", method, level),
        per_seed,
        ["curve", "aux_size"],
        "worth",
    )
    beyond = worth.groupby(by)["beyond_curve"].sum().to_numpy()
    out["worth"].insert(len(by) + 5, "beyond_curve", beyond.astype(int))
    whole = "+".join(aux_members)
    curves = set(worth["curve"])
    if len(aux_members) >= 2 and whole in curves and all(a in curves for a in aux_members):
        inter = interaction(worth, aux_members, whole)
        out["interaction_by_seed"] = inter
        by = ["aux_size", "n"]
        out["interaction"] = with_problems(
            summarize(inter, by, "interaction", method, level), inter, by, "interaction"
        )
        median = _median(inter, ["seed", "aux_size"], "interaction")
        out["interaction_over_sizes"] = with_problems(
            summarize(median, ["aux_size"], "interaction", method, level),
            median,
            ["aux_size"],
            "interaction",
        )
    return out


def _median(frame: pd.DataFrame, by: list[str], value: str) -> pd.DataFrame:
    """Each group's median of ``value`` (NaN left out) and its rows' reasons."""
    return frame.groupby(by, as_index=False).agg(
        **{value: (value, "median"), PROBLEM: (PROBLEM, _reasons)}
    )
