"""Redo a transfer study's analysis from its runs: the scores table the study logged (its
runs' current metrics), or the finished children's when it stopped before logging it;
then the matrix and its latent traits (``analysis.py``) logged to the parent again."""

from __future__ import annotations

import itertools
from typing import Any

import pandas as pd

from soi_mlflow.analysis.runs import cache_for
from soi_mlflow.errors import SoiInputError
from soi_mlflow.studies.profiles import logged_config
from soi_mlflow.studies.readback import Reanalysis, ReanalysisOptions
from soi_mlflow.studies.transfer.analysis import log_transfer
from soi_mlflow.studies.transfer.study import ALL_TARGETS
from soi_mlflow.tracking import tags
from soi_mlflow.tracking.health import get_run
from soi_mlflow.tracking.run import RunHandle
from soi_mlflow.tracking.search import search_all

MATRIX = "transfer matrix (rows: sources, columns: targets)"


def study_scores(parent_run_id: str, tracking_uri: str | None = None):
    """(scores, parent run) of a transfer study: the runs of its scores table (reused runs
    count too) with their current metrics, or its children's when the study stopped
    before logging that table."""
    cache = cache_for(tracking_uri)
    run = get_run(cache.client, parent_run_id, cache.tracking_uri, "parent run id")
    if run.data.tags.get(tags.STUDY) != "transfer":
        raise SoiInputError(f"run {parent_run_id} is not the parent run of a transfer study")
    logged = {a.path for a in cache.client.list_artifacts(parent_run_id, "tables")}
    if "tables/transfer_scores.parquet" not in logged:
        return _own_cells(_scores_from_children(cache.client, run), run), run
    scores = pd.read_parquet(cache.file(parent_run_id, "tables/transfer_scores.parquet"))
    metrics = {r: cache.client.get_run(r).data.metrics for r in set(scores["run_id"])}
    scores["score"] = [
        metrics[r].get(f"test/{t}/acc", float("nan"))
        for r, t in zip(scores["run_id"], scores["target"], strict=True)
    ]
    return _own_cells(scores, run), run


def _own_cells(scores: pd.DataFrame, run: Any) -> pd.DataFrame:
    """The runs alone and the cells into the study's targets (a joint pair's run holds
    both directions; the other one's target was not trained alone)."""
    targets = study_targets(run)
    if not targets:
        return scores
    keep = scores["source"].isna() | scores["target"].isin(targets)
    return scores[keep].reset_index(drop=True)


def reanalyze_transfer(parent_run_id: str, tracking_uri: str | None = None):
    """Rebuild a transfer study's matrix from its runs (``study_scores``) and log it to
    the parent again; returns (mean, std, traits)."""
    scores, run = study_scores(parent_run_id, tracking_uri)
    return relog_transfer(run, scores, tracking_uri)


def relog_transfer(run: Any, scores: pd.DataFrame, tracking_uri: str | None = None):
    """Log the matrix of the transfer study whose parent is ``run``, from ``scores`` (as
    :func:`study_scores` reads them), to that parent again; returns (mean, std, traits)."""
    cache = cache_for(tracking_uri)
    members = run.data.tags[tags.MEMBERS].split(",")
    order = [m for m in run.data.params.get("members", "").split(",") if m in members] or members
    parent = RunHandle(
        cache.client, run.info.run_id, run.info.experiment_id, cache.tracking_uri, created=False
    )
    mode = run.data.tags.get(tags.MODE, "joint")
    seeds = int(run.data.tags.get(tags.SEEDS, "1"))
    targets = study_targets(run)
    scores = _own_cells(scores, run)  # as study_scores reads them; other callers' too
    config = logged_config(cache, run, order, list(dict.fromkeys(scores["run_id"])))
    return log_transfer(parent, scores, order, mode, seeds, config, targets=targets)


def study_targets(run: Any) -> list[str]:
    """The members a transfer study trained only the cells into (its ``targets`` param);
    empty for a study of the whole matrix, an older one included."""
    value = run.data.params.get("targets", ALL_TARGETS)
    return [] if value == ALL_TARGETS else value.split(",")


def _scores_from_children(client, parent) -> pd.DataFrame:
    """The scores table of a transfer study, from its finished child runs (alone: one
    member; joint: a pair, both ways; sequential: ``soi.sequence`` SOURCE>TARGET)."""
    rows = []
    finished, parent_id = "attributes.status = 'FINISHED'", {tags.PARENT_RUN_ID: parent.info.run_id}
    for run in search_all(client, [parent.info.experiment_id], finished, parent_id):
        own = run.data.tags
        members, seed = own.get(tags.MEMBERS, "").split(","), int(own.get(tags.SEED, 0))
        sequence = own.get(tags.SEQUENCE)
        if sequence:
            pairs = [tuple(sequence.split(">", 1))]
        elif len(members) == 1:
            pairs = [(None, members[0])]
        else:
            pairs = list(itertools.permutations(members, 2))
        for source, target in pairs:
            score = run.data.metrics.get(f"test/{target}/acc")
            rows.append(
                {
                    "seed": seed,
                    "source": source,
                    "target": target,
                    "score": float("nan") if score is None else float(score),
                    "run_id": run.info.run_id,
                }
            )
    if not rows:
        raise SoiInputError(f"run {parent.info.run_id}: a transfer study without finished runs")
    return pd.DataFrame(rows)


def reanalyze(handle: RunHandle, run: Any, options: ReanalysisOptions | None = None) -> Reanalysis:
    """:func:`reanalyze_transfer` as the registry calls it: the matrix, to show."""
    mean, _, _ = reanalyze_transfer(handle.run_id, handle.tracking_uri)
    targets = study_targets(run)  # a targeted study's own columns, as `transfer` prints them
    return Reanalysis("transfer", {MATRIX: mean[targets] if targets else mean})
