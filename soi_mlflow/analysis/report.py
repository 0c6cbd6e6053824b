"""Analyses logged back to MLflow: per run, and per single-vs-multi comparison."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from soi_mlflow.analysis import figures
from soi_mlflow.analysis.cartography import DEFAULT_THRESHOLDS, RegionThresholds, regions
from soi_mlflow.analysis.duck.engine import engine_soi_table
from soi_mlflow.analysis.html import data_map_html, transitions_html
from soi_mlflow.analysis.matrix import MIN_OBSERVED
from soi_mlflow.analysis.runs import cache_for, load_examples, soi_table, warn_if_stale
from soi_mlflow.analysis.side_effects import log_side_effects
from soi_mlflow.analysis.soi import TOO_FEW, UNASSIGNED, Taxonomy, get_taxonomy
from soi_mlflow.analysis.transition_tables import majority_soi, seed_transitions
from soi_mlflow.tracking.artifacts import log_figures, log_html, log_table
from soi_mlflow.tracking.health import get_run
from soi_mlflow.tracking.links import md_escape, set_description_section
from soi_mlflow.tracking.run import log_metric_batch, metric_safe, resolve_tracking_uri

if TYPE_CHECKING:
    from soi_mlflow.analysis.duck.engine import Engine


def _client(tracking_uri: str | None):
    return cache_for(resolve_tracking_uri(tracking_uri)).client


def soi_fractions(table: pd.DataFrame, taxonomy: str | Taxonomy = "default") -> pd.Series:
    """Share of each subset; ``too_few_epochs`` and ``unassigned`` too when any example is
    in them, so the shares always add up to 1 over every example."""
    counts = table["soi"].astype(str).value_counts(normalize=True)
    names = [*get_taxonomy(taxonomy).subsets, *(n for n in (UNASSIGNED, TOO_FEW) if n in counts)]
    return counts.reindex(names, fill_value=0.0)


COVERAGE_COLUMNS = ("analysed", "coverage", "never_observed", "mean_observed_epochs")


def coverage_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per member of an SOI table: how many of its examples the analysis could judge.

    ``examples`` (every example of the table), ``analysed`` (observed in at least the
    minimum of epochs, so given a subset), ``coverage`` = analysed / examples,
    ``never_observed`` (in the run's example table, in no trace epoch) and
    ``mean_observed_epochs``."""
    observed = table["n_observed"].to_numpy()
    frame = pd.DataFrame(
        {
            "member": table["member"].astype(str).to_numpy(),
            "analysed": (table["soi"].astype(str) != TOO_FEW).to_numpy(),
            "never_observed": observed == 0,
            "observed": observed,
        }
    )
    out = frame.groupby("member").agg(
        examples=("analysed", "size"),
        analysed=("analysed", "sum"),
        never_observed=("never_observed", "sum"),
        mean_observed_epochs=("observed", "mean"),
    )
    out.insert(2, "coverage", out["analysed"] / out["examples"])
    return out


def pooled_coverage(tables: Sequence[pd.DataFrame]) -> float:
    """The share of the examples of ``tables`` (one per seed, pooled) that have a subset:
    the compare summary's ``coverage_single`` / ``coverage_multi``."""
    soi = pd.concat([t["soi"].astype(str) for t in tables], ignore_index=True)
    return float((soi != TOO_FEW).mean()) if len(soi) else float("nan")


def analyze_run(
    run_id: str,
    splits: Sequence[str] = ("train",),
    taxonomy: str | Taxonomy = "default",
    tracking_uri: str | None = None,
    thresholds: RegionThresholds = DEFAULT_THRESHOLDS,
    min_observed: int = MIN_OBSERVED,
    engine: Engine | None = None,
) -> dict[str, pd.DataFrame]:
    """SOI and cartography of a run's splits, logged back to the run.

    Per split: metrics ``soi/<split>/<subset>_frac`` and ``soi/<split>/coverage`` (and
    per member ``soi/<split>/<member>/<subset>_frac`` and ``.../coverage``: the share of
    examples observed in enough epochs to be given a subset),
    ``tables/soi_<split>.parquet`` (per example), ``tables/soi_fractions_<split>`` (per
    member: subset shares and coverage; Parquet and a previewable JSON), the figures
    ``soi_distribution_<split>.png`` and ``datamap_<split>.png``, the interactive
    ``html/datamap_<split>.html``, and an "Analysis" section in the run's description.
    ``engine``: in memory or on DuckDB (``analysis.duck.engine``; default in memory).
    """
    client = _client(tracking_uri)
    run_name = get_run(client, run_id, resolve_tracking_uri(tracking_uri)).info.run_name
    warn_if_stale(run_id, tracking_uri)
    tax = get_taxonomy(taxonomy)
    out = {}
    for split in splits:
        table = _soi_table(run_id, split, tax, tracking_uri, engine, min_observed)
        table["region"] = regions(table, thresholds)
        metrics = {f"soi/{split}/{k}_frac": float(v) for k, v in soi_fractions(table, tax).items()}
        summary = fractions_table(table, tax)
        coverage = coverage_table(table)
        metrics[f"soi/{split}/coverage"] = float((table["soi"].astype(str) != TOO_FEW).mean())
        for member, part in table.groupby("member", observed=True):
            name = metric_safe(str(member))
            metrics[f"soi/{split}/{name}/coverage"] = float(coverage.loc[str(member), "coverage"])
            for k, v in soi_fractions(part, tax).items():
                metrics[f"soi/{split}/{name}/{k}_frac"] = float(v)
        log_metric_batch(client, run_id, metrics, step=0)
        log_table(client, run_id, table, f"soi_{split}")
        log_table(client, run_id, summary, f"soi_fractions_{split}")
        epochs = int(table.attrs.get("epochs", 0)) or None
        what = f"{run_name}, {split} split" + (f", {epochs} epochs" if epochs else "")
        page = data_map_html(
            table,
            title=f"Data map ({what})",
            examples=_examples_or_none(client, run_id, split, tracking_uri),
            thresholds=thresholds,
        )
        log_html(client, run_id, page, f"html/datamap_{split}.html")
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
    set_description_section(client, run_id, "Analysis", analysis_note(list(out)))
    return out


def _soi_table(
    run_id: str,
    split: str,
    taxonomy: Taxonomy,
    tracking_uri: str | None,
    engine: Engine | None,
    min_observed: int = MIN_OBSERVED,
) -> pd.DataFrame:
    """``soi_table`` in memory, or on ``engine`` when one is given."""
    if engine is None:
        return soi_table(run_id, split, taxonomy, tracking_uri, min_observed=min_observed)

    return engine_soi_table(
        engine, run_id, split, taxonomy, tracking_uri, min_observed=min_observed
    )


def analysis_note(splits: Sequence[str]) -> str:
    """What ``analyze_run`` added to a run and where to look (Markdown)."""
    lines = []
    for split in splits:
        lines += [
            f"- **`html/datamap_{split}.html`** (Artifacts): the interactive data map of the "
            f"{split} split; hover a point to see the example, filter by member or subset",
            f"- `tables/soi_fractions_{split}.json`: SOI fractions per member; "
            f"`tables/soi_{split}.parquet`: SOI and cartography per example (for Python)",
            f"- `figures/datamap_{split}.png`, `figures/soi_distribution_{split}.png`; "
            f"metrics `soi/{split}/<subset>_frac`",
        ]
    return "\n".join(lines)


def fractions_table(table: pd.DataFrame, taxonomy: str | Taxonomy = "default") -> pd.DataFrame:
    """Per member (and all together): the number of examples, each subset's share, and the
    coverage columns of :func:`coverage_table`."""
    rows = {"all": soi_fractions(table, taxonomy)}
    counts = {"all": len(table)}
    for member, part in table.groupby("member", observed=True, sort=True):
        rows[str(member)] = soi_fractions(part, taxonomy)
        counts[str(member)] = len(part)
    out = pd.DataFrame(rows).T.fillna(0.0).round(4)
    out.insert(0, "examples", pd.Series(counts))
    if "n_observed" in table.columns:
        everyone = coverage_table(table.assign(member="all"))
        cov = pd.concat([everyone, coverage_table(table)])[list(COVERAGE_COLUMNS)]
        out = out.join(cov.round(4))
    return out.rename_axis("member")


def _examples_or_none(client, run_id: str, split: str, tracking_uri: str | None):
    """The run's example table of ``split`` (texts, labels), or None when it has none
    (runs traced by a user's own loop may not log one)."""
    names = {a.path for a in client.list_artifacts(run_id, "examples")}
    if f"examples/{split}.parquet" not in names:
        return None
    return load_examples(run_id, split, tracking_uri)


@dataclass
class SingleVsMultiRuns:
    """Runs of a single-vs-multi study: per member its single runs, and the multi runs."""

    single: dict[str, list[str]]  # member -> run ids (one per seed)
    multi: list[str]  # run ids (one per seed)
    ood: list[str] = field(default_factory=list)

    def runs(self, source: str = "multi") -> pd.DataFrame:
        """``seed, source, target, run_id`` as a transfer study's scores give them: per
        seed (the k-th run of each list) each member's single run (``source`` None) and
        the multi run (``source`` ``"multi"``), for the side effects of the mixture."""
        rows = []
        for member, runs in self.single.items():
            for k in range(max(len(runs), len(self.multi))):
                rows.append((k, None, member, runs[k] if k < len(runs) else None))
                multi = self.multi[k] if k < len(self.multi) else None
                rows.append((k, source, member, multi))
        return pd.DataFrame(rows, columns=["seed", "source", "target", "run_id"])


def _metric(client, run_id: str, key: str) -> float:
    return float(client.get_run(run_id).data.metrics.get(key, np.nan))


def accuracy_table(client, comparison: SingleVsMultiRuns) -> pd.DataFrame:
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


def log_single_vs_multi(
    parent_run_id: str,
    comparison: SingleVsMultiRuns,
    split: str = "train",
    taxonomy: str | Taxonomy = "default",
    aggregate: str = "majority",
    tracking_uri: str | None = None,
    engine: Engine | None = None,
) -> pd.DataFrame:
    """Single vs multi, logged to the parent run; returns the per-member summary table.

    Figures: ``transitions_<member>.png`` (counts and row-normalised),
    ``soi_single_vs_multi.png``, ``accuracy_single_vs_multi.png``. Tables:
    ``transitions_<member>``, ``summary`` (each also as previewable JSON), and the side
    effects of the mixture (``analysis/side_effects.py``: ``side_effects_*`` tables, the
    ``side_effects.png`` figure). Pages:
    ``html/transitions_<member>.html``. Metrics: :func:`headline_metrics`. A "Results"
    section in the parent's description says where to look.
    """
    client = _client(tracking_uri)
    tax = get_taxonomy(taxonomy)
    multi_tables = [_soi_table(r, split, tax, tracking_uri, engine) for r in comparison.multi]
    figs: dict[str, object] = {}
    summary = accuracy_table(client, comparison)
    fractions = {}
    seeds = len(comparison.multi)
    how = "majority SOI over seeds" if aggregate == "majority" else "summed over seed pairs"
    for member, runs in comparison.single.items():
        single_tables = [_soi_table(r, split, tax, tracking_uri, engine) for r in runs]
        multi_member = [t[t["member"].astype(str) == member] for t in multi_tables]
        counts = seed_transitions(single_tables, multi_member, member, None, aggregate, tax)
        cov = counts.attrs["coverage"]
        log_table(client, parent_run_id, counts, f"transitions_{member}")
        ties = counts.attrs.get("ties")
        tie_note = f", ties kept as 'tie': {ties[0]} / {ties[1]}" if ties else ""
        title = (
            f"{member}: SOI single -> multi ({split}, {seeds} seed(s), {how}{tie_note}; "
            f"{cov['matched']} examples matched)"
        )
        figs[f"transitions_{member}"] = figures.transition_heatmap(counts, "single", "multi", title)
        log_html(
            client,
            parent_run_id,
            _transitions_page(runs, single_tables, multi_member, member, split, tax, tracking_uri),
            f"html/transitions_{member}.html",
        )
        fractions[(member, "single")] = soi_fractions(pd.concat(single_tables), tax)
        fractions[(member, "multi")] = soi_fractions(pd.concat(multi_member), tax)
        for subset in tax.subsets:
            summary.loc[member, f"{subset}_single"] = fractions[(member, "single")][subset]
            summary.loc[member, f"{subset}_multi"] = fractions[(member, "multi")][subset]
        for setting, tables in (("single", single_tables), ("multi", multi_member)):
            summary.loc[member, f"coverage_{setting}"] = pooled_coverage(tables)
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
    # side effects of the mixture on each member's confusion matrix (analysis/side_effects.py)
    log_side_effects(client, parent_run_id, comparison.runs(), tracking_uri, " (multi vs single)")
    log_metric_batch(client, parent_run_id, headline_metrics(summary), step=0)
    set_description_section(
        client, parent_run_id, "Results", comparison_note(summary, list(comparison.single))
    )
    return summary


def headline_metrics(summary: pd.DataFrame) -> dict[str, float]:
    """The comparison's accuracy columns as parent metrics: ``summary/<member>/<col>``,
    the mean over members ``summary/mean/<col>``, and the mean gain of multi over single
    ``summary/mean/id_gain`` (and ``ood_gain``)."""
    cols = [c for c in summary.columns if c.startswith(("id_", "ood_"))]
    out = {}
    for member, row in summary[cols].iterrows():
        for col in cols:
            out[f"summary/{metric_safe(member)}/{col}"] = float(row[col])
    means = summary[cols].mean()
    for col in cols:
        out[f"summary/mean/{col}"] = float(means[col])
    for kind in ("id", "ood"):
        if f"{kind}_single" in means and f"{kind}_multi" in means:
            out[f"summary/mean/{kind}_gain"] = float(
                means[f"{kind}_multi"] - means[f"{kind}_single"]
            )
    return {k: v for k, v in out.items() if np.isfinite(v)}


def comparison_note(summary: pd.DataFrame, members: Sequence[str]) -> str:
    """Where to look on a comparison's parent run (Markdown)."""
    lines = [
        "- **`tables/summary.json`** (Artifacts): per member, test accuracy in-distribution "
        "and OOD, single vs multi, the SOI fractions and the coverage (share of examples "
        "with a subset); metrics `summary/mean/id_gain`, "
        "`summary/mean/ood_gain` (multi minus single, mean over members)",
    ]
    for member in members:
        lines.append(
            f"- **`html/transitions_{md_escape(member)}.html`**: how {md_escape(member)}'s "
            "examples move between subsets, single to multi; click a cell to list them"
        )
    lines.append(
        "- `figures/accuracy_single_vs_multi.png`, `figures/soi_single_vs_multi.png`, "
        "`figures/transitions_<member>.png`; each child run has its own interactive data map"
    )
    return "\n".join(lines)


def _transitions_page(
    single_runs: Sequence[str],
    single_tables: Sequence[pd.DataFrame],
    multi_tables: Sequence[pd.DataFrame],
    member: str,
    split: str,
    taxonomy: Taxonomy,
    tracking_uri: str | None,
) -> str:
    """The interactive transition page of one member: per example, its SOI in the single
    run and in the multi run (the majority over seeds when there are several)."""
    if len(single_tables) == 1 and len(multi_tables) == 1:
        a, b, note = single_tables[0], multi_tables[0], ""
    else:
        a, b = majority_soi(single_tables, taxonomy), majority_soi(multi_tables, taxonomy)
        note = (
            f"Each example's SOI is the most frequent over the seeds "
            f"({len(single_tables)} single, {len(multi_tables)} multi)."
        )
    client = _client(tracking_uri)
    return transitions_html(
        a,
        b,
        title=f"{member}: SOI single -> multi ({split} split)",
        label_a="single",
        label_b="multi",
        examples=_examples_or_none(client, single_runs[0], split, tracking_uri),
        subsets=[*taxonomy.subsets],
        note=note,
    )
