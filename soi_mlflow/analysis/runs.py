"""Finding runs and reading their traces, example tables and SOI tables back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from soi_mlflow.analysis.from_traces import example_members, soi_from_matrix
from soi_mlflow.analysis.from_traces import soi_frame as soi_frame  # its old home
from soi_mlflow.analysis.matrix import MIN_OBSERVED, TraceMatrix
from soi_mlflow.analysis.soi import Taxonomy, get_taxonomy
from soi_mlflow.analysis.transition_tables import transition_matrix
from soi_mlflow.errors import SoiInputError
from soi_mlflow.tracking.artifacts import ArtifactCache
from soi_mlflow.tracking.health import check_tracking, get_run, is_stale, stale_message
from soi_mlflow.tracking.names import check_split_name as check_split
from soi_mlflow.tracking.run import TAG_PREFIX, resolve_tracking_uri
from soi_mlflow.tracking.search import PAGE_SIZE, all_experiment_ids, search_all
from soi_mlflow.tracking.trace_files import (
    TraceFiles,
    cached_trace_files,
    list_traces,
    locate_traces,
)
from soi_mlflow.tracking.trace_format import (
    TraceFormatError,
    check_metadata,
    open_trace,
    read_trace,
)


def cache_for(tracking_uri: str | None = None) -> ArtifactCache:
    """One artifact cache per tracking store, shared by every call in this process. The URI
    is resolved first (the flag, else ``MLFLOW_TRACKING_URI`` now), so that a variable
    changed between calls names the store it names, not the first one."""
    return _cache_of(resolve_tracking_uri(tracking_uri))


@lru_cache(maxsize=8)
def _cache_of(uri: str) -> ArtifactCache:
    return ArtifactCache(uri)


def trace_files(run_id: str, split: str = "train", tracking_uri: str | None = None) -> TraceFiles:
    """Where a run's trace files of ``split`` are read from: a pyarrow filesystem (the
    local artifact folder in place, the tracking server over HTTP range requests, S3, or
    the download cache) and the files grouped by epoch (tracking/trace_files.py)."""
    return locate_traces(cache_for(tracking_uri), run_id, check_split(split))


def trace_paths(run_id: str, split: str = "train", tracking_uri: str | None = None) -> list:
    """Local paths of a run's trace files of ``split``, in epoch order (the shards of an
    epoch together): in place for a local artifact store, else the cache's copies."""
    found = trace_files(run_id, split, tracking_uri)
    if found.source in ("local", "cache"):
        return [Path(p) for p in found.paths]
    cache = cache_for(tracking_uri)
    listed = list_traces(cache.client, run_id, split)
    return [Path(p) for p in cached_trace_files(cache, run_id, split, listed).paths]


@contextmanager
def naming_the_run(run_id: str, split: str, found: TraceFiles | None = None) -> Iterator[None]:
    """A trace file that cannot be read is an error naming the run and its artifact path
    (not the local cache's copy or a URL), so the user knows which run to re-log or
    re-train."""
    try:
        yield
    except TraceFormatError as exc:
        artifact = (found.artifacts if found else {}).get(exc.path)
        artifact = artifact or f"traces/{split}/{Path(exc.path).name}"
        raise SoiInputError(f"run {run_id}: trace file {artifact} {exc.problem}") from None


def load_traces(run_id: str, split: str = "train", tracking_uri: str | None = None) -> pd.DataFrame:
    """Every epoch's trace of ``split`` (schema-v1 columns), one row per example and epoch,
    read where the traces are (:func:`trace_files`)."""
    found = trace_files(run_id, split, tracking_uri)
    with naming_the_run(run_id, split, found):
        frames = [read_trace(p, found.filesystem) for p in found.paths]
    return pd.concat(frames, ignore_index=True)


def load_examples(
    run_id: str, split: str = "train", tracking_uri: str | None = None
) -> pd.DataFrame:
    """The run's example table of ``split``: ids, members, labels, texts, metadata."""
    path = cache_for(tracking_uri).file(run_id, f"examples/{check_split(split)}.parquet")
    return pd.read_parquet(path)


PREDICTION_COLUMNS = ["example_id", "member", "task", "gold", "pred"]


def last_epoch_predictions(
    run_id: str, split: str = "test", tracking_uri: str | None = None
) -> pd.DataFrame:
    """The predictions of ``split`` at the run's last traced epoch: ``example_id, member,
    task, gold, pred`` (class indices), one row per example (a DDP shard's repeat counts
    once, its last row). ``attrs["label_names"]`` holds the class names per task from the
    files' metadata, ``attrs["epoch"]`` the epoch read."""
    found = trace_files(run_id, split, tracking_uri)
    epoch = max(found.epochs)
    frames, names = [], {}
    with naming_the_run(run_id, split, found):
        for path in found.epochs[epoch]:
            with open_trace(path, found.filesystem) as pf:
                names |= check_metadata(path, pf).get("label_names") or {}
                table = pf.read(columns=PREDICTION_COLUMNS)
            frames.append(table.to_pandas())
    out = pd.concat(frames, ignore_index=True)
    out = out.drop_duplicates("example_id", keep="last").reset_index(drop=True)
    for column in ("member", "task"):
        out[column] = out[column].astype(str)
    out.attrs |= {"label_names": names, "epoch": epoch, "run_id": run_id}
    return out


def trace_matrix(run_id: str, split: str = "train", tracking_uri: str | None = None) -> TraceMatrix:
    """The run's traces of ``split`` as a matrix, reading only the columns it needs where
    the traces are (:func:`trace_files`)."""
    found = trace_files(run_id, split, tracking_uri)
    with naming_the_run(run_id, split, found):
        return TraceMatrix.from_files(found.paths, found.filesystem)


def _run_examples(run_id: str, split: str, tracking_uri: str | None) -> pd.DataFrame | None:
    """``example_id`` and ``member`` of the run's example table of ``split``, or None when
    the run logged none (a user's own table may lack ``member``)."""
    folder = cache_for(tracking_uri).folder(run_id, "examples")
    path = folder / f"{split}.parquet"
    if not path.exists():
        return None
    import pyarrow.parquet as pq

    has_member = "member" in pq.read_schema(path).names
    columns = ["example_id", "member"] if has_member else ["example_id"]
    return example_members(pd.read_parquet(path, columns=columns))


def soi_table(
    run_id: str,
    split: str = "train",
    taxonomy: str | Taxonomy = "default",
    tracking_uri: str | None = None,
    split_epoch: int | None = None,
    min_observed: int = MIN_OBSERVED,
) -> pd.DataFrame:
    """Per example: ``example_id, member, soi, confidence, variability, correctness,
    forgetting_events, first_learned_epoch`` (plus ``n_correct``, ``last_correct``,
    ``n_observed``), over the epochs each example was observed in.

    Every example counts: one observed in fewer than ``min_observed`` epochs (or never,
    when the run's example table lists it but no trace holds it) is in ``too_few_epochs``
    with NaN cartography. ``report.coverage_table`` summarises this per member.
    The run's traces through :func:`~soi_mlflow.analysis.from_traces.soi_from_traces`'s
    core: ``soi_from_traces(load_traces(run_id, split))`` gives the same table."""
    get_taxonomy(taxonomy)
    tm = trace_matrix(run_id, split, tracking_uri)
    examples = _run_examples(run_id, split, tracking_uri)
    frame = soi_from_matrix(tm, taxonomy, split_epoch, min_observed, examples)
    frame.attrs |= {"run_id": run_id, "split": split}
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

    The ``stale`` column is True for a RUNNING run without progress (a finished epoch) for
    ``SOI_MLFLOW_STALE_AFTER`` seconds (default 1800): its process most likely died.
    Tag values are quoted safely whatever they hold, and every page of results is read."""
    import mlflow

    wanted = {f"{TAG_PREFIX}{key}": str(value) for key, value in tags.items()}
    if parent_run_id:
        wanted["mlflow.parentRunId"] = parent_run_id
    uri = resolve_tracking_uri(tracking_uri)
    check_tracking(uri)
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
            "stale": is_stale(run),
            "start_time": pd.to_datetime(run.info.start_time, unit="ms"),
            "parent_run_id": run.data.tags.get("mlflow.parentRunId"),
        }
        row |= {
            k[len(TAG_PREFIX) :]: v for k, v in run.data.tags.items() if k.startswith(TAG_PREFIX)
        }
        row |= {f"metrics.{k}": v for k, v in run.data.metrics.items()}
        rows.append(row)
    return pd.DataFrame(rows)


def warn_if_stale(run_id: str, tracking_uri: str | None = None) -> bool:
    """Warn (stderr) when ``run_id`` is RUNNING without progress: its traces may stop short."""
    import sys

    cache = cache_for(tracking_uri)
    run = get_run(cache.client, run_id, cache.tracking_uri)
    if is_stale(run):
        print(f"soi-mlflow: warning: {stale_message(run)}", file=sys.stderr)
        return True
    return False


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
    a = soi_table(run_a, split, taxonomy, tracking_uri)
    b = soi_table(run_b, split, taxonomy, tracking_uri)
    return transition_matrix(a, b, member, normalize, taxonomy)
