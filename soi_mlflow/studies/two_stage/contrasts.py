"""The paired comparisons of a two-stage study, pure functions of DataFrames.

``runs`` lists the study's children (seed, role, selection, member, run_id, size; role
``stage 1``, ``stage 2``, ``control`` or ``single``), ``accuracy`` their final accuracies
per member and split, ``paired`` the per-seed differences (stage 2 − stage 1, stage 2 −
its control of the same size, and with several members the multi-setting runs − each
member alone), and ``intervals`` their mean over seeds with a Student t interval (a
selection dropped in some seeds uses the others; "not identified" with fewer than 2).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from soi_mlflow.analysis.identified import not_identified

LEVEL = 0.95
METHOD = "Student t over seeds, paired by seed, 95 %"
S2_S1, S2_CONTROL = "stage 2 - stage 1", "stage 2 - control"
S1_SINGLE, S2_SINGLE = "stage 1 - alone", "stage 2 - alone"
CONTRASTS = (S2_S1, S2_CONTROL, S1_SINGLE, S2_SINGLE)
KEYS = ["selection", "contrast", "member", "split", "alone"]


def accuracy(
    runs: pd.DataFrame,
    metrics: Mapping[str, Mapping[str, float]],
    members: list[str],
    ood: list[str],
) -> pd.DataFrame:
    """One row per run, member and split (``test``: ID, ``ood``): its final accuracy from
    ``metrics`` (run id -> MLflow metrics; a missing metric is NaN). A member alone is
    scored on its own test set and on every OOD member."""
    rows = []
    for run in runs.itertuples(index=False):
        own = metrics.get(run.run_id, {})
        ids = [run.member] if run.role == "single" else members
        for split, names in (("test", ids), ("ood", ood)):
            for m in names:
                value = own.get(f"{split}/{m}/acc")
                rows.append(
                    {
                        "seed": int(run.seed),
                        "role": run.role,
                        "selection": run.selection,
                        "size": run.size,
                        "trained": run.member,
                        "member": m,
                        "split": split,
                        "run_id": run.run_id,
                        "acc": np.nan if value is None else float(value),
                    }
                )
    cols = ["seed", "role", "selection", "size", "trained", "member", "split", "run_id", "acc"]
    return pd.DataFrame(rows, columns=cols)


def _diff(a: pd.DataFrame, b: pd.DataFrame, on: list[str], **labels: str) -> pd.DataFrame:
    """``a.acc - b.acc`` matched on ``on``, labelled."""
    both = a.merge(b, on=on, suffixes=("_a", "_b"))
    out = both[on].copy()
    out["diff"] = both["acc_a"] - both["acc_b"]
    for k, v in labels.items():
        out[k] = v
    return out


def paired(acc: pd.DataFrame) -> pd.DataFrame:
    """Per seed, member and split, the differences of :data:`CONTRASTS` (a stage 2's
    control is the control of its seed with the same size); columns ``KEYS``, seed, diff.
    ``alone`` names the member trained alone in the last two (on an OOD member, each
    member alone is its own baseline); it is empty in the others."""
    on = ["seed", "member", "split"]
    s1 = acc[acc["role"] == "stage 1"]
    control = acc[acc["role"] == "control"]
    single = acc[acc["role"] == "single"][[*on, "trained", "acc"]]
    parts = []
    if len(single):
        for m, alone in single.groupby("trained", sort=True):
            alone = alone.drop(columns="trained")
            parts.append(_diff(s1, alone, on, selection="", contrast=S1_SINGLE, alone=m))
    for name, s2 in acc[acc["role"] == "stage 2"].groupby("selection", sort=False):
        parts.append(_diff(s2, s1, on, selection=name, contrast=S2_S1, alone=""))
        matched = _diff(s2, control, [*on, "size"], selection=name, contrast=S2_CONTROL, alone="")
        parts.append(matched.drop(columns="size"))
        for m, alone in single.groupby("trained", sort=True):
            alone = alone.drop(columns="trained")
            parts.append(_diff(s2, alone, on, selection=name, contrast=S2_SINGLE, alone=m))
    if not parts:
        return pd.DataFrame(columns=[*KEYS, "seed", "diff"])
    out = pd.concat(parts, ignore_index=True)
    return out[[*KEYS, "seed", "diff"]]


def _dropped_reason(selection: str, seeds: list[int], left: int) -> str:
    """Why a selection's interval is not identified: it was empty in ``seeds``."""
    where = ", ".join(str(s) for s in sorted(seeds))
    return not_identified(
        f"{selection} matches no training example in seed(s) {where}; "
        f"{left} seed(s) left, an interval needs 2"
    )


def _everywhere_empty(out: pd.DataFrame, dropped: pd.DataFrame) -> list[dict]:
    """Rows for the selections dropped in every seed: the contrasts, members and splits
    of the selections that have differences, with no estimate and the reason."""
    present = set(out["selection"])
    named = out[out["selection"] != ""]
    template = named[named["selection"] == named["selection"].iloc[0]] if len(named) else named
    rows = []
    for name, part in dropped.groupby("selection", sort=False):
        if name in present:
            continue
        why = _dropped_reason(name, list(part["seed"]), 0)
        for r in template.itertuples(index=False):
            rows.append(
                {
                    "selection": name,
                    "contrast": r.contrast,
                    "member": r.member,
                    "split": r.split,
                    "alone": r.alone,
                    "mean": np.nan,
                    "low": np.nan,
                    "high": np.nan,
                    "seeds": 0,
                    "excludes_0": False,
                    "method": METHOD,
                    "problem": why,
                }
            )
    return rows


def intervals(
    diffs: pd.DataFrame, level: float = LEVEL, dropped: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Per selection, contrast, member, split and member alone: the mean difference over
    seeds, its Student t interval (NaN bounds with one seed), the number of seeds and
    whether the interval excludes 0. In the order the differences came. ``dropped``
    (selection, seed): the pairs left out because the selection was empty in that seed;
    a selection's intervals then use the seeds that have it, and say "not identified" in
    ``problem`` when fewer than 2 remain (rows with no estimate, at the end, for a
    selection empty in every seed)."""
    from soi_mlflow.analysis.intervals import t_interval  # deferred: scipy

    if dropped is None:
        dropped = pd.DataFrame(columns=["selection", "seed"])
    empty_in = {n: list(p["seed"]) for n, p in dropped.groupby("selection", sort=False)}
    rows = []
    for key, part in diffs.groupby(KEYS, sort=False):
        mean, low, high = t_interval(part["diff"], level)
        seeds = int(part["diff"].notna().sum())
        where = dict(zip(KEYS, key, strict=True))
        problem = None
        if where["selection"] in empty_in and seeds < 2:
            problem = _dropped_reason(where["selection"], empty_in[where["selection"]], seeds)
        rows.append(
            {
                **where,
                "mean": mean,
                "low": low,
                "high": high,
                "seeds": seeds,
                "excludes_0": bool(low > 0 or high < 0),
                "method": METHOD,
                "problem": problem,
            }
        )
    cols = [*KEYS, "mean", "low", "high", "seeds", "excludes_0", "method", "problem"]
    out = pd.DataFrame(rows, columns=cols)
    extra = _everywhere_empty(out, dropped)
    return pd.concat([out, pd.DataFrame(extra, columns=cols)], ignore_index=True) if extra else out


def terminal(table: pd.DataFrame, width: int = 30) -> dict[str, pd.DataFrame]:
    """The intervals as short text, one frame per selection (``stage 1`` for the
    multi-setting stage 1 against each member alone), indexed by contrast: each under
    100 terminal columns."""

    def member(row) -> str:
        name = f"{row.member} ({'ID' if row.split == 'test' else 'OOD'})"
        if row.alone and row.alone != row.member:
            name += f" v {row.alone}"
        return name if len(name) <= width else name[: width - 1] + "~"

    def problems(part: pd.DataFrame) -> list:
        return list(part["problem"]) if "problem" in part.columns else [None] * len(part)

    out = {}
    for name, part in table.groupby("selection", sort=False):
        out[name or "stage 1"] = pd.DataFrame(
            {
                "member": [member(r) for r in part.itertuples(index=False)],
                "mean": ["n/a" if np.isnan(v) else f"{v:+.3f}" for v in part["mean"]],
                "95% CI": [
                    "not identified"
                    if isinstance(why, str)
                    else "n/a"
                    if np.isnan(lo)
                    else f"[{lo:+.3f}, {hi:+.3f}]"
                    for lo, hi, why in zip(part["low"], part["high"], problems(part), strict=True)
                ],
                "seeds": part["seeds"].to_numpy(),
                "excludes 0": ["yes" if x else "no" for x in part["excludes_0"]],
            },
            index=pd.Index(part["contrast"].to_numpy(), name="contrast"),
        )
    return out
