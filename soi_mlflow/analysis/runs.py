"""Finding runs and reading their traces, example tables and SOI tables back."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import pandas as pd

from soi_mlflow.analysis.cartography import dynamics
from soi_mlflow.analysis.matrix import TraceMatrix
from soi_mlflow.analysis.soi import Taxonomy, assign, get_taxonomy
from soi_mlflow.analysis.store import ArtifactCache
from soi_mlflow.errors import SoiInputError
from soi_mlflow.tracking.run import TAG_PREFIX, resolve_tracking_uri
from soi_mlflow.tracking.search import PAGE_SIZE, all_experiment_ids, search_all
from soi_mlflow.tracking.trace_format import read_trace

SPLITS = ("train", "validation", "test", "ood")


@lru_cache(maxsize=8)
def cache_for(tracking_uri: str | None = None) -> ArtifactCache:
    """One artifact cache per tracking store, shared by every call in this process."""
    return ArtifactCache(resolve_tracking_uri(tracking_uri))


def _split(split: str) -> str:
    if split not in SPLITS:
        raise SoiInputError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return split


def trace_paths(run_id: str, split: str = "train", tracking_uri: str | None = None) -> list:
    """Local paths of a run's trace files of ``split``, one per epoch, in epoch order."""
    folder = cache_for(tracking_uri).folder(run_id, f"traces/{_split(split)}")
    paths = sorted(folder.glob("epoch=*.parquet"))
    if not paths:
        raise SoiInputError(f"run {run_id} has no traces of split {split!r}")
    return paths


def load_traces(run_id: str, split: str = "train", tracking_uri: str | None = None) -> pd.DataFrame:
    """Every epoch's trace of ``split`` (schema-v1 columns), one row per example and epoch."""
    frames = [read_trace(p) for p in trace_paths(run_id, split, tracking_uri)]
    return pd.concat(frames, ignore_index=True)


def load_examples(
    run_id: str, split: str = "train", tracking_uri: str | None = None
) -> pd.DataFrame:
    """The run's example table of ``split``: ids, members, labels, texts, metadata."""
    path = cache_for(tracking_uri).file(run_id, f"examples/{_split(split)}.parquet")
    return pd.read_parquet(path)


def trace_matrix(run_id: str, split: str = "train", tracking_uri: str | None = None) -> TraceMatrix:
    return TraceMatrix.from_files(trace_paths(run_id, split, tracking_uri))


def soi_frame(
    tm: TraceMatrix, taxonomy: str | Taxonomy = "default", split_epoch: int | None = None
) -> pd.DataFrame:
    """SOI and cartography of every example of a trace matrix."""
    frame = dynamics(tm)
    frame.insert(2, "soi", assign(frame, tm.n_epochs, taxonomy, split_epoch))
    return frame


def soi_table(
    run_id: str,
    split: str = "train",
    taxonomy: str | Taxonomy = "default",
    tracking_uri: str | None = None,
    split_epoch: int | None = None,
) -> pd.DataFrame:
    """Per example: ``example_id, member, soi, confidence, variability, correctness,
    forgetting_events, first_learned_epoch`` (plus ``n_correct``, ``last_correct``)."""
    get_taxonomy(taxonomy)
    tm = trace_matrix(run_id, split, tracking_uri)
    frame = soi_frame(tm, taxonomy, split_epoch)
    frame.attrs |= {"run_id": run_id, "split": split, "epochs": tm.n_epochs, "dropped": tm.dropped}
    return frame


def find_runs(
    experiment: str | None = None,
    filter_string: str | None = None,
    tracking_uri: str | None = None,
    parent_run_id: str | None = None,
    page_size: int = PAGE_SIZE,
    **tags: Any,
) -> pd.DataFrame:
    """Runs of ``experiment`` (all experiments if None) matching an MLflow filter string
    and ``soi.*`` tags given as keywords: ``find_runs("demo", setting="single", seed=0)``.

    Tag values are quoted safely whatever they hold, and every page of results is read."""
    import mlflow

    wanted = {f"{TAG_PREFIX}{key}": str(value) for key, value in tags.items()}
    if parent_run_id:
        wanted["mlflow.parentRunId"] = parent_run_id
    uri = resolve_tracking_uri(tracking_uri)
    client = mlflow.MlflowClient(uri)
    if experiment is None:
        ids = all_experiment_ids(client)
    else:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            raise SoiInputError(f"no experiment named {experiment!r} in {uri}")
        ids = [found.experiment_id]
    runs = search_all(client, ids, filter_string, wanted, page_size)
    rows = []
    for run in runs:
        row = {
            "run_id": run.info.run_id,
            "run_name": run.info.run_name,
            "experiment_id": run.info.experiment_id,
            "status": run.info.status,
            "start_time": pd.to_datetime(run.info.start_time, unit="ms"),
            "parent_run_id": run.data.tags.get("mlflow.parentRunId"),
        }
        row |= {
            k[len(TAG_PREFIX) :]: v for k, v in run.data.tags.items() if k.startswith(TAG_PREFIX)
        }
        row |= {f"metrics.{k}": v for k, v in run.data.metrics.items()}
        rows.append(row)
    return pd.DataFrame(rows)


def transitions(
    run_a: str,
    run_b: str,
    split: str = "train",
    member: str | None = None,
    normalize: str | None = None,
    taxonomy: str | Taxonomy = "default",
    tracking_uri: str | None = None,
) -> pd.DataFrame:
    """Rows: SOI in ``run_a``; columns: SOI in ``run_b``; ``normalize="row"`` for fractions.

    Examples are matched by id; ``attrs["coverage"]`` says how many matched."""
    from soi_mlflow.analysis.transition_tables import transition_matrix

    a = soi_table(run_a, split, taxonomy, tracking_uri)
    b = soi_table(run_b, split, taxonomy, tracking_uri)
    return transition_matrix(a, b, member, normalize, taxonomy)
