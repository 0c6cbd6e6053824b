"""The noise benchmark's analysis, as tables: each detector's scores with what could not be scored,
the flagged sets' precision and recall, what each detector's top k holds, and the summary
over seeds (mean and standard deviation) with the rows the command prints."""

from __future__ import annotations

import numpy as np
import pandas as pd

from soi_mlflow.analysis.identified import not_identified, reasons

METRICS = ("auroc", "ap", "p_at_k")


def with_unscored(table: pd.DataFrame, scores: pd.DataFrame, truth: np.ndarray) -> pd.DataFrame:
    """``score_detectors``' table with a ``problem`` column: a row per detector it left
    out (a score missing for some examples) and, without planted noise, every detector's
    metrics are reported as not identified."""
    out = table.copy()
    out["problem"] = None
    for name in scores.columns:
        if name not in out.index:
            missing = int(scores[name].isna().sum())
            out.loc[name, "problem"] = not_identified(
                f"{name} has no score for {missing} of {len(scores)} examples"
            )
    if not np.asarray(truth, bool).any():
        out["problem"] = out["problem"].fillna(
            not_identified("no planted mislabeled example: detection cannot be scored")
        )
    out["base_rate"] = float(np.mean(truth)) if len(truth) else float("nan")
    out.index.name = "detector"
    return out


FLAG_SETS = {"soi_flag": "soi_flag", "confident_learning": "cl_issue"}


def flag_sets(scores: pd.DataFrame, truth: np.ndarray) -> pd.DataFrame:
    """Detectors that also decide *which* examples are noisy (the SOI flags, confident
    learning's issues): the set's size, precision and recall."""
    rows = []
    for detector, column in FLAG_SETS.items():
        if column in scores:
            flagged = scores[column].to_numpy(dtype=bool)
            rows.append(
                {
                    "detector": detector,
                    "set_size": int(flagged.sum()),
                    "set_precision": truth[flagged].mean() if flagged.any() else float("nan"),
                    "set_recall": flagged[truth].mean() if truth.any() else float("nan"),
                }
            )
    return pd.DataFrame(rows, columns=["detector", "set_size", "set_precision", "set_recall"])


def top_k_breakdown(scores: pd.DataFrame, detectors: list[str]) -> pd.DataFrame:
    """Per detector, what its k highest scores hold (k = the true noise count; ties broken
    at random, seeded): the share of each noise mechanism's examples caught
    (``caught_<noise>``) and the share of the top k that is clean near-boundary,
    clean strong, or ambiguous (``top_<evidence>``)."""
    truth = (scores["planted"] == "mislabeled").to_numpy()
    k = int(truth.sum())
    noise = scores["noise"].fillna("uniform") if "noise" in scores else None
    evidence = scores.get("evidence")
    rng = np.random.default_rng(0)
    rows = []
    for name in detectors:
        s = scores[name].to_numpy(dtype=float)
        if np.isnan(s).any() or not k:
            continue
        top = np.zeros(len(s), dtype=bool)
        top[np.lexsort((rng.random(len(s)), -s))[:k]] = True
        row: dict[str, object] = {"detector": name}
        if noise is not None:
            for mech in sorted(set(noise[truth])):
                mine = truth & (noise == mech).to_numpy()
                row[f"caught_{mech}"] = top[mine].mean()
        weak = (evidence == "weak").to_numpy() if evidence is not None else np.zeros_like(top)
        ambiguous = (scores["planted"] == "ambiguous").to_numpy()
        clean = top & ~truth & ~ambiguous
        row["top_clean_weak"] = (clean & weak).sum() / k
        row["top_ambiguous"] = (top & ambiguous).sum() / k
        row["top_clean_strong"] = (clean & ~weak).sum() / k
        rows.append(row)
    return pd.DataFrame(rows)


def summarize(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation (ddof=1; NaN for one seed) of each metric per detector,
    best average precision first."""
    grouped = per_seed.groupby("detector")[list(METRICS)]
    mean, std = grouped.mean(), grouped.std(ddof=1)
    out = pd.concat({"mean": mean, "std": std}, axis=1)
    out.columns = [f"{metric}_{stat}" for stat, metric in out.columns]
    out = out[[f"{m}_{s}" for m in METRICS for s in ("mean", "std")]]
    sets = [c for c in ("set_size", "set_precision", "set_recall") if c in per_seed]
    if sets:
        out = out.join(per_seed.groupby("detector")[sets].mean())
    out["seeds"] = per_seed.groupby("detector").size()
    out["base_rate"] = per_seed.groupby("detector")["base_rate"].mean()
    if "problem" in per_seed:
        why = per_seed.groupby("detector")["problem"].agg(reasons)
        out["problem"] = [
            None if np.isfinite(ap) else not_identified(why[d])
            for d, ap in zip(out.index, out["ap_mean"], strict=True)
        ]
    return out.sort_values("ap_mean", ascending=False)


def summary_rows(summary: pd.DataFrame) -> tuple[list[str], list[list]]:
    """The table the command prints (columns, rows): per detector, mean ± std over seeds
    and, for detectors that flag a set, its size, precision and recall."""
    rows = []
    for name, row in summary.iterrows():
        cells = [f"{row[f'{m}_mean']:.3f} ± {row[f'{m}_std']:.3f}" for m in METRICS]
        sets = [row.get(c, float("nan")) for c in ("set_size", "set_precision", "set_recall")]
        rows.append([name, *cells, *sets])
    columns = ["detector", "AUROC", "AP", "P@k", "set\nsize", "set\nprecision", "set\nrecall"]
    return columns, rows
