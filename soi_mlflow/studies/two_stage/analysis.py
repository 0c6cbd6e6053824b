"""The analysis of a two-stage study, logged to its parent by the study (``study.py``)
and by its re-analysis (``reanalysis.py``): each run's accuracy (ID and OOD) per member
and seed with the headline metrics and a bar figure; the paired differences with their
intervals (``contrasts.py``) as a table and one figure; and stage 2's SOI migration per
selection (``migration.py``) as a table and one heatmap per selection."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from soi_mlflow.analysis import identified
from soi_mlflow.analysis.runs import soi_table
from soi_mlflow.analysis.soi import Taxonomy
from soi_mlflow.studies.two_stage.contrasts import METHOD, accuracy, intervals, paired, terminal
from soi_mlflow.studies.two_stage.figure import intervals_figure
from soi_mlflow.studies.two_stage.migration import migration_counts, migration_rows
from soi_mlflow.studies.two_stage.selections import dropped_frame
from soi_mlflow.tracking.artifacts import log_figures, log_table
from soi_mlflow.tracking.run import metric_safe

NOT_IDENTIFIED_TABLE = "two_stage_not_identified"
"""The parent's table of (selection, seed) pairs dropped because the selection was empty."""


@dataclass
class TwoStageAnalysis:
    """What the analysis logged: the accuracy table (mean over seeds; rows member
    (split), columns runs), the intervals, their terminal view (per selection) and the
    migration rows."""

    table: pd.DataFrame
    intervals: pd.DataFrame
    terminal: dict[str, pd.DataFrame]
    migration: pd.DataFrame


def accuracy_rows(client, runs: dict[str, str], members: list[str], ood: list[str]) -> pd.DataFrame:
    """Per member and run: final test (ID) accuracy, and OOD accuracy per OOD member."""
    rows = []
    for label, run_id in runs.items():
        metrics = client.get_run(run_id).data.metrics
        for m in members:
            rows.append(
                {"run": label, "member": m, "split": "test", "acc": metrics.get(f"test/{m}/acc")}
            )
        for o in ood:
            rows.append(
                {"run": label, "member": o, "split": "ood", "acc": metrics.get(f"ood/{o}/acc")}
            )
    return pd.DataFrame(rows)


def two_stage_headline(acc: pd.DataFrame) -> dict[str, float]:
    """Mean accuracy over members (and seeds) per run and split
    (``summary/stage_2/test_acc``, ...) and each stage 2's gain over its random control
    (``summary/test_acc_stage2_minus_control``; with several selections
    ``summary/<selection>/test_acc_stage2_minus_control``)."""
    means = acc.dropna(subset=["acc"]).groupby(["run", "split"])["acc"].mean()
    out = {f"summary/{metric_safe(run)}/{split}_acc": float(v) for (run, split), v in means.items()}
    for run in dict.fromkeys(acc["run"]):
        if not str(run).startswith("stage 2"):
            continue
        selection = str(run)[len("stage 2") :].strip()
        for split in ("test", "ood"):
            control = f"control {selection}".strip()
            if (run, split) in means and (control, split) in means:
                gain = float(means[(run, split)] - means[(control, split)])
                where = f"{metric_safe(selection)}/" if selection else ""
                out[f"summary/{where}{split}_acc_stage2_minus_control"] = gain
    return out


def labelled(acc: pd.DataFrame, named: bool | None = None) -> pd.DataFrame:
    """``contrasts.accuracy`` rows with a ``run`` label (``stage 1``, ``<member> alone``,
    ``stage 2`` and ``control``, or with several selections ``stage 2 <selection>`` and
    ``control <selection>``); a control shared by selections of one size is repeated
    under each of them. ``named``: whether the labels carry the selection (None: when
    the stage-2 runs have several; a study of several selections, some dropped as empty,
    keeps the names)."""
    stage2 = acc[acc["role"] == "stage 2"]
    names = list(dict.fromkeys(stage2["selection"]))
    named = len(names) > 1 if named is None else named
    parts = [
        acc[acc["role"] == "stage 1"].assign(run="stage 1"),
        *(
            part.assign(run=f"{m} alone")
            for m, part in acc[acc["role"] == "single"].groupby("trained", sort=True)
        ),
    ]
    for name in names:
        suffix = f" {name}" if named else ""
        own = stage2[stage2["selection"] == name]
        parts.append(own.assign(run=f"stage 2{suffix}"))
        sizes = own[["seed", "size"]].drop_duplicates()
        matched = acc[acc["role"] == "control"].merge(sizes, on=["seed", "size"])
        parts.append(matched.assign(run=f"control{suffix}"))
    out = pd.concat(parts, ignore_index=True)
    return out[["seed", "run", "selection", "member", "split", "acc", "run_id"]]


def wide_table(rows: pd.DataFrame) -> pd.DataFrame:
    """:func:`labelled` rows as the mean over seeds: rows ``member (split)``, columns
    runs in their order."""
    wide = rows.pivot_table(index=["member", "split"], columns="run", values="acc", sort=False)
    wide = wide.reindex(columns=list(dict.fromkeys(rows["run"])))
    wide.index = [f"{m} ({s})" for m, s in wide.index]
    return wide


def _accuracy(parent: Any, acc: pd.DataFrame, title: str, named: bool) -> tuple[pd.DataFrame, dict]:
    """Log the accuracy table, headline metrics and bar figure; (the wide table, the
    table's problems)."""
    # deferred: matplotlib
    from soi_mlflow.analysis import figures  # matplotlib, when a figure is drawn

    rows = labelled(acc, named)
    rows["problem"] = [
        None if pd.notna(a) else identified.not_identified(f"run {r} has no metric {s}/{m}/acc")
        for r, m, s, a in zip(
            rows["run_id"], rows["member"], rows["split"], rows["acc"], strict=True
        )
    ]
    problems = identified.table_problems({"two_stage_accuracy": rows}, keys=4)
    log_table(parent.client, parent.run_id, rows, "two_stage_accuracy")
    parent.log_metrics(two_stage_headline(rows), step=0)
    wide = wide_table(rows)
    figure = figures.side_by_side(wide, title + identified.title_note(problems), "accuracy")
    log_figures(parent.client, parent.run_id, {"two_stage_accuracy": figure})
    return wide, problems


def _migration(
    parent: Any,
    runs: pd.DataFrame,
    taxonomy: str | Taxonomy,
    stage1_tables: Mapping[int, pd.DataFrame] | None,
) -> pd.DataFrame:
    """Per selection, the SOI migration of its examples from stage 1 to stage 2, summed
    over seeds: one long table and one heatmap per selection."""
    # deferred: matplotlib
    from soi_mlflow.analysis import figures  # matplotlib, when a figure is drawn

    uri = parent.tracking_uri
    tables = dict(stage1_tables or {})
    for r in runs[runs["role"] == "stage 1"].itertuples(index=False):
        if r.seed not in tables:
            tables[r.seed] = soi_table(r.run_id, taxonomy=taxonomy, tracking_uri=uri)
    parts, figs = [], {}
    stage2 = runs[runs["role"] == "stage 2"]
    for k, (name, own) in enumerate(stage2.groupby("selection", sort=False), start=1):
        pairs = [
            (tables[r.seed], soi_table(r.run_id, taxonomy=taxonomy, tracking_uri=uri))
            for r in own.itertuples(index=False)
            if r.seed in tables
        ]
        counts = migration_counts(pairs, taxonomy)
        parts.append(migration_rows(name, counts, len(pairs)))
        title = (
            f"SOI migration of {name}: {counts.attrs['matched']} selected examples, "
            f"stage 1 to stage 2, summed over {len(pairs)} seed(s)"
        )
        figs[f"two_stage_migration_{k}_{metric_safe(name)}"] = figures.transition_heatmap(
            counts, "stage 1", "stage 2", title
        )
    out = pd.concat(parts, ignore_index=True) if parts else migration_rows("", pd.DataFrame(), 0)
    log_table(parent.client, parent.run_id, out, "two_stage_migration")
    log_figures(parent.client, parent.run_id, figs)
    return out


def log_two_stage(
    parent: Any,
    runs: pd.DataFrame,
    members: list[str],
    ood: list[str],
    title: str,
    taxonomy: str | Taxonomy | None = "default",
    stage1_tables: Mapping[int, pd.DataFrame] | None = None,
    dropped: pd.DataFrame | None = None,
) -> TwoStageAnalysis:
    """The accuracy table, headline metrics and figure, the paired intervals (table and
    figure) and the SOI migration of the study's ``runs`` (seed, role, selection,
    member, run_id, size), logged to ``parent``. A run without a member's metric gives a
    "not identified" accuracy row instead of an error. ``stage1_tables``: stage 1's SOI
    table per seed when already read; ``taxonomy`` None: no migration (a taxonomy this
    process does not know). ``dropped``: the (selection, seed) pairs whose selection was
    empty (``selections.select_per_seed``), logged (if any) as ``two_stage_not_identified`` and
    reported with the intervals they leave without enough seeds."""
    ids = list(dict.fromkeys(runs["run_id"]))
    metrics = {i: parent.client.get_run(i).data.metrics for i in ids}
    acc = accuracy(runs, metrics, members, ood)
    if dropped is None:
        dropped = dropped_frame()
    names = {*runs.loc[runs["role"] == "stage 2", "selection"], *dropped["selection"]}
    wide, problems = _accuracy(parent, acc, title, len(names) > 1)
    if len(dropped):
        log_table(parent.client, parent.run_id, dropped, NOT_IDENTIFIED_TABLE)
    table = intervals(paired(acc), dropped=dropped)
    log_table(parent.client, parent.run_id, table, "two_stage_intervals")
    problems = {
        **problems,
        **identified.table_problems({NOT_IDENTIFIED_TABLE: dropped}),
        **identified.table_problems({"two_stage_intervals": table}, keys=4),
    }
    seeds = runs["seed"].nunique()
    figure = intervals_figure(
        table,
        f"Paired differences over {seeds} seed(s): mean and {METHOD} interval "
        "(filled dot: the interval excludes 0)"
        + identified.title_note({k: v for k, v in problems.items() if "intervals" in k}),
    )
    log_figures(parent.client, parent.run_id, {"two_stage_intervals": figure})
    moved = (
        _migration(parent, runs, taxonomy, stage1_tables)
        if taxonomy is not None
        else migration_rows("", pd.DataFrame(), 0)
    )
    identified.report(parent.client, parent.run_id, problems)
    return TwoStageAnalysis(wide, table, terminal(table), moved)
