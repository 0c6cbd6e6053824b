"""Any two runs compared (docs/design.md): SOI transitions from run A to run B, and data maps.

Works on every run with traces, whoever wrote them (the built-in trainer, the recorder in
a plain loop, the Lightning or Trainer callbacks): it needs no ``soi.*`` tags, only
``traces/<split>/`` and matching ``example_id`` values. The figures and tables go to a
new comparison run (in run B's experiment, tagged with both run ids) or into run B.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from soi_mlflow.analysis import figures
from soi_mlflow.analysis.cartography import DEFAULT_THRESHOLDS, RegionThresholds, regions
from soi_mlflow.analysis.report import soi_fractions
from soi_mlflow.analysis.runs import cache_for, check_split, soi_table
from soi_mlflow.analysis.soi import Taxonomy, get_taxonomy
from soi_mlflow.analysis.transition_tables import transition_matrix
from soi_mlflow.errors import SoiInputError
from soi_mlflow.tracking.artifacts import log_figures, log_table
from soi_mlflow.tracking.run import RunHandle, log_metric_batch, metric_safe
from soi_mlflow.tracking.run_open import open_run
from soi_mlflow.tracking.store import resolve_tracking_uri
from soi_mlflow.tracking.tags import COMPARE_RUN_A, COMPARE_RUN_B

INTO = ("new", "b")


@dataclass
class RunComparison:
    """What :func:`compare_runs` logged, and where."""

    run_id: str  # the run the figures and tables went to
    counts: pd.DataFrame  # rows: SOI in A, columns: SOI in B
    coverage: dict[str, Any]
    soi_a: pd.DataFrame
    soi_b: pd.DataFrame
    by_member: dict[str, pd.DataFrame] = field(default_factory=dict)


def _label(client: Any, run_id: str) -> str:
    name = client.get_run(run_id).info.run_name
    return name or run_id[:8]


def compare_runs(
    run_a: str,
    run_b: str,
    split: str = "train",
    *,
    into: str = "new",
    taxonomy: str | Taxonomy = "default",
    tracking_uri: str | None = None,
    thresholds: RegionThresholds = DEFAULT_THRESHOLDS,
) -> RunComparison:
    """SOI transitions of ``split`` from ``run_a`` to ``run_b``, logged back to MLflow.

    Examples are matched by ``example_id``; the coverage says how many matched. Logged:
    ``figures/transitions_<split>.png`` (counts and row-normalised; one more per member
    when the runs share several), ``figures/datamap_<split>_a.png`` and ``_b.png``,
    ``tables/transitions_<split>.parquet`` and metrics ``compare/<split>/...``.
    ``into="new"``: a new run in run B's experiment, tagged ``soi.compare.run_a`` and
    ``soi.compare.run_b``; ``into="b"``: run B itself.
    """
    if into not in INTO:
        raise SoiInputError(f"into: expected one of {', '.join(INTO)}, got {into!r}")
    check_split(split)
    if run_a == run_b:
        raise SoiInputError(f"compare two different runs (both are {run_a})")
    uri = resolve_tracking_uri(tracking_uri)
    client = cache_for(uri).client
    runs = {}
    for what, run_id in (("run_a", run_a), ("run_b", run_b)):
        try:
            runs[what] = client.get_run(run_id)
        except Exception as err:  # MlflowException: not found / bad id
            raise SoiInputError(f"{what}: no run {run_id!r} in {uri} ({err})") from err
    tax = get_taxonomy(taxonomy)
    a = soi_table(run_a, split, tax, uri)
    b = soi_table(run_b, split, tax, uri)
    for table in (a, b):
        table["region"] = regions(table, thresholds)
    label_a, label_b = _label(client, run_a), _label(client, run_b)
    counts = transition_matrix(a, b, None, None, tax)
    coverage = counts.attrs["coverage"]
    if coverage["matched"] == 0:
        raise SoiInputError(
            f"runs {run_a} and {run_b} share no example_id in split {split!r}: were they "
            "trained on the same data with the same ids (soi_mlflow.data.with_example_ids)?"
        )
    if into == "b":
        return _log(client, run_b, "b", a, b, label_a, label_b, counts, split, tax, thresholds)
    target = _new_run(uri, run_a, runs["run_b"], label_a, label_b, split)
    try:
        out = _log(
            target.client,
            target.run_id,
            "new",
            a,
            b,
            label_a,
            label_b,
            counts,
            split,
            tax,
            thresholds,
        )
    except BaseException as exc:
        target.end(exc)  # FAILED or KILLED, with the reason in soi.end_reason
        raise
    target.end()
    return out


def _log(
    client: Any,
    target: str,
    into: str,
    a: pd.DataFrame,
    b: pd.DataFrame,
    label_a: str,
    label_b: str,
    counts: pd.DataFrame,
    split: str,
    tax: Taxonomy,
    thresholds: RegionThresholds,
) -> RunComparison:
    """Figures, tables and metrics of one comparison, into run ``target``."""
    coverage = counts.attrs["coverage"]
    suffix = "" if into == "new" else f"_from_{metric_safe(label_a)}"
    what = f"{split} split, {coverage['matched']} examples matched"
    figs = {
        f"transitions_{split}{suffix}": figures.transition_heatmap(
            counts, label_a, label_b, f"SOI {label_a} -> {label_b} ({what})"
        ),
    }
    if into == "new":
        for side, table, label in (("a", a, label_a), ("b", b, label_b)):
            title = f"Data map of {label} ({split} split, {table.attrs['epochs']} epochs)"
            figs[f"datamap_{split}_{side}"] = figures.data_map(table, title, thresholds)
    by_member = {}
    members = sorted(set(a["member"].astype(str)) & set(b["member"].astype(str)))
    if len(members) > 1:
        for member in members:
            part = transition_matrix(a, b, member, None, tax)
            by_member[member] = part
            name = f"transitions_{split}_{metric_safe(member)}{suffix}"
            figs[name] = figures.transition_heatmap(
                part,
                label_a,
                label_b,
                f"{member}: SOI {label_a} -> {label_b} ({split}, "
                f"{part.attrs['coverage']['matched']} matched)",
            )
            log_table(client, target, part, name)
    log_figures(client, target, figs)
    log_table(client, target, counts, f"transitions_{split}{suffix}")
    prefix = f"compare/{split}{suffix}"
    metrics = {f"{prefix}/matched": coverage["matched"]}
    metrics |= {f"{prefix}/only_a": coverage["only_a"], f"{prefix}/only_b": coverage["only_b"]}
    for side, table in (("a", a), ("b", b)):
        for subset, frac in soi_fractions(table, tax).items():
            metrics[f"{prefix}/{side}/{subset}_frac"] = float(frac)
    log_metric_batch(client, target, metrics, step=0)
    return RunComparison(target, counts, coverage, a, b, by_member)


def _new_run(uri: str, run_a: str, run_b: Any, label_a: str, label_b: str, split: str) -> RunHandle:
    """A comparison run in run B's experiment, pointing at both runs."""
    tags = {
        "mlflow.runName": f"compare {label_a} -> {label_b} ({split})",
        "mlflow.note.content": (
            f"SOI transitions of the {split} split from run {label_a} ({run_a}) to run "
            f"{label_b} ({run_b.info.run_id}), by soi_mlflow.analysis.compare_runs."
        ),
        COMPARE_RUN_A: run_a,
        COMPARE_RUN_B: run_b.info.run_id,
    }
    return open_run(
        uri,
        adopt="new",
        experiment_id=run_b.info.experiment_id,
        run_name=tags["mlflow.runName"],
        tags=tags,
    )
