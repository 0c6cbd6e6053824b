"""Analyses logged back to MLflow: per run, and per single-vs-multi comparison."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from soi_mlflow.analysis import figures
from soi_mlflow.analysis.cartography import DEFAULT_THRESHOLDS, RegionThresholds, regions
from soi_mlflow.analysis.runs import cache_for, soi_table
from soi_mlflow.analysis.soi import Taxonomy, get_taxonomy
from soi_mlflow.analysis.transition_tables import seed_transitions
from soi_mlflow.tracking.run import log_metric_batch, resolve_tracking_uri


def _client(tracking_uri: str | None):
    return cache_for(resolve_tracking_uri(tracking_uri)).client


def log_table(client, run_id: str, frame: pd.DataFrame, name: str) -> None:
    """``tables/<name>.parquet`` on the run (index kept when it carries labels)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.parquet"
        keep_index = not isinstance(frame.index, pd.RangeIndex)
        frame.to_parquet(path, index=keep_index)
        client.log_artifact(run_id, str(path), "tables")


def log_figures(client, run_id: str, figs: Mapping[str, object]) -> None:
    for name, fig in figs.items():
        client.log_figure(run_id, fig, f"figures/{name}.png")
    figures.close(figs)


def soi_fractions(table: pd.DataFrame, taxonomy: str | Taxonomy = "default") -> pd.Series:
    subsets = get_taxonomy(taxonomy).subsets
    return table["soi"].astype(str).value_counts(normalize=True).reindex(subsets, fill_value=0.0)


def analyze_run(
    run_id: str,
    splits: Sequence[str] = ("train",),
    taxonomy: str | Taxonomy = "default",
    tracking_uri: str | None = None,
    thresholds: RegionThresholds = DEFAULT_THRESHOLDS,
) -> dict[str, pd.DataFrame]:
    """SOI and cartography of a run's splits, logged back to the run.

    Per split: metrics ``soi/<split>/<subset>_frac`` (and per member
    ``soi/<split>/<member>/<subset>_frac``), ``tables/soi_<split>.parquet``, and the
    figures ``soi_distribution_<split>.png`` and ``datamap_<split>.png``.
    """
    client = _client(tracking_uri)
    run_name = client.get_run(run_id).info.run_name
    tax = get_taxonomy(taxonomy)
    out = {}
    for split in splits:
        table = soi_table(run_id, split, tax, tracking_uri)
        table["region"] = regions(table, thresholds)
        metrics = {f"soi/{split}/{k}_frac": float(v) for k, v in soi_fractions(table, tax).items()}
        for member, part in table.groupby("member", observed=True):
            for k, v in soi_fractions(part, tax).items():
                metrics[f"soi/{split}/{member}/{k}_frac"] = float(v)
        log_metric_batch(client, run_id, metrics, step=0)
        log_table(client, run_id, table, f"soi_{split}")
        epochs = int(table.attrs.get("epochs", 0)) or None
        what = f"{run_name}, {split} split" + (f", {epochs} epochs" if epochs else "")
        log_figures(
            client,
            run_id,
            {
                f"soi_distribution_{split}": figures.soi_distribution(
                    table, f"SOI per member ({what})"
                ),
                f"datamap_{split}": figures.data_map(table, f"Data map ({what})", thresholds),
            },
        )
        out[split] = table
    return out


@dataclass
class Comparison:
    """Runs of a single-vs-multi study: per member its single runs, and the multi runs."""

    single: dict[str, list[str]]  # member -> run ids (one per seed)
    multi: list[str]  # run ids (one per seed)
    ood: list[str] = field(default_factory=list)


def _metric(client, run_id: str, key: str) -> float:
    return float(client.get_run(run_id).data.metrics.get(key, np.nan))


def accuracy_table(client, comparison: Comparison) -> pd.DataFrame:
    """Per member: ID (test) accuracy single vs multi, and mean OOD accuracy of each."""
    rows = []
    for member, runs in comparison.single.items():
        row = {"member": member}
        row["id_single"] = np.nanmean([_metric(client, r, f"test/{member}/acc") for r in runs])
        row["id_multi"] = np.nanmean(
            [_metric(client, r, f"test/{member}/acc") for r in comparison.multi]
        )
        if comparison.ood:
            row["ood_single"] = np.nanmean(
                [_metric(client, r, f"ood/{o}/acc") for r in runs for o in comparison.ood]
            )
            row["ood_multi"] = np.nanmean(
                [
                    _metric(client, r, f"ood/{o}/acc")
                    for r in comparison.multi
                    for o in comparison.ood
                ]
            )
        rows.append(row)
    return pd.DataFrame(rows).set_index("member")


def compare(
    parent_run_id: str,
    comparison: Comparison,
    split: str = "train",
    taxonomy: str | Taxonomy = "default",
    aggregate: str = "majority",
    tracking_uri: str | None = None,
) -> pd.DataFrame:
    """Single vs multi, logged to the parent run; returns the per-member summary table.

    Figures: ``transitions_<member>.png`` (counts and row-normalised),
    ``soi_single_vs_multi.png``, ``accuracy_single_vs_multi.png``. Tables:
    ``transitions_<member>``, ``summary``.
    """
    client = _client(tracking_uri)
    tax = get_taxonomy(taxonomy)
    multi_tables = [soi_table(r, split, tax, tracking_uri) for r in comparison.multi]
    figs: dict[str, object] = {}
    summary = accuracy_table(client, comparison)
    fractions = {}
    seeds = len(comparison.multi)
    how = "majority SOI over seeds" if aggregate == "majority" else "summed over seed pairs"
    for member, runs in comparison.single.items():
        single_tables = [soi_table(r, split, tax, tracking_uri) for r in runs]
        multi_member = [t[t["member"].astype(str) == member] for t in multi_tables]
        counts = seed_transitions(single_tables, multi_member, member, None, aggregate, tax)
        cov = counts.attrs["coverage"]
        log_table(client, parent_run_id, counts, f"transitions_{member}")
        title = (
            f"{member}: SOI single -> multi ({split}, {seeds} seed(s), {how}; "
            f"{cov['matched']} examples matched)"
        )
        figs[f"transitions_{member}"] = figures.transition_heatmap(counts, "single", "multi", title)
        fractions[(member, "single")] = soi_fractions(pd.concat(single_tables), tax)
        fractions[(member, "multi")] = soi_fractions(pd.concat(multi_member), tax)
        for subset in tax.subsets:
            summary.loc[member, f"{subset}_single"] = fractions[(member, "single")][subset]
            summary.loc[member, f"{subset}_multi"] = fractions[(member, "multi")][subset]
    frac = pd.DataFrame(fractions).T
    frac.index = [f"{m} ({s})" for m, s in frac.index]
    figs["soi_single_vs_multi"] = figures.side_by_side(
        frac,
        f"SOI fractions, single vs multi ({split} split, {seeds} seed(s) pooled)",
        "fraction of examples",
    )
    acc_cols = [c for c in summary.columns if c.startswith(("id_", "ood_"))]
    figs["accuracy_single_vs_multi"] = figures.side_by_side(
        summary[acc_cols],
        f"Test accuracy: in-distribution and OOD, single vs multi (mean of {seeds} seed(s))",
        "accuracy",
    )
    log_figures(client, parent_run_id, figs)
    log_table(client, parent_run_id, summary, "summary")
    return summary
