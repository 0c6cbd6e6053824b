"""An epoch's rows into trace files and metrics: every rank's rows gathered on rank 0, or
each rank's own part of them in shard mode (``tracking/shards.py``); the last visit of
each example kept and checked, the per-split metrics, and one trace file per (split,
epoch[, rank]) put into the run's spool."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from soi_mlflow.errors import SoiInputError
from soi_mlflow.tracking.label_space import LabelSpace
from soi_mlflow.tracking.names import (
    METRIC_PREFIX,
    shard_artifact_path,
    shard_file_name,
    trace_artifact_path,
    trace_file_name,
)
from soi_mlflow.tracking.run import metric_safe
from soi_mlflow.tracking.shards import drop_shadowed, exchange_names, reduce_metrics, to_union
from soi_mlflow.tracking.shards import union as union_names
from soi_mlflow.tracking.spool import Spool
from soi_mlflow.tracking.trace_format import build_table, write_trace
from soi_mlflow.tracking.trace_rows import COLUMNS, last_visit

Rows = dict[str, np.ndarray]


def gather(local: dict[str, Rows], world: int, space: LabelSpace) -> dict[str, Rows] | None:
    """Every rank's rows per split on rank 0 (None elsewhere), rank 0's rows first.
    Ranks may have met member and task names in different orders: their indices are
    mapped onto rank 0's name tables."""
    if world == 1:
        return local
    import torch.distributed as dist

    payload = {"members": space.members.names, "tasks": space.tasks.names, "rows": local}
    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, payload)  # plain lists and numpy arrays only
    if dist.get_rank() != 0:
        return None
    for part in gathered:
        members, tasks = space.adopt(part["members"], part["tasks"])
        for rows in part["rows"].values():
            if len(rows["member_idx"]):
                rows["member_idx"] = members[rows["member_idx"]]
                rows["task_idx"] = tasks[rows["task_idx"]]
    splits = sorted({s for part in gathered for s in part["rows"]})
    return {
        s: {
            k: np.concatenate([p["rows"][s][k] for p in gathered if s in p["rows"]])
            for k in (*COLUMNS, "step")
        }
        for s in splits
    }


def epoch_rows(
    merged: dict[str, Rows], space: LabelSpace, epoch: int
) -> Iterator[tuple[str, Rows]]:
    """Each split's rows of the epoch, in split order: the last visit of each example,
    checked against the name space, with the epoch column; splits without rows skipped."""
    for split in sorted(merged):
        rows = last_visit(merged[split])
        if not len(rows["example_id"]):
            continue
        space.check_rows(split, rows)
        rows["epoch"] = np.int32(epoch)
        yield split, rows


def sharded_epoch(
    local: dict[str, Rows], space: LabelSpace, epoch: int, rank: int
) -> tuple[dict[str, Rows], tuple[list[str], list[str]], dict[str, float]]:
    """This rank's shard of each split of the epoch, the member and task names its
    indices refer to (the same on every rank: rank 0's tables), and the epoch's metrics
    (rank 0; empty elsewhere). Each rank keeps its own last visits, then drops the
    examples a higher rank holds too, which leaves the gathered path's rows
    (``shards.py``). Collective: every rank calls it, with or without rows."""
    own = {s: last_visit(r) for s, r in local.items() if len(r["example_id"])}
    error = None
    try:
        for split, rows in own.items():
            space.check_rows(split, rows)
    except SoiInputError as exc:
        error = str(exc)
    parts = exchange_names(space, {s: len(r["example_id"]) for s, r in own.items()}, rank, error)
    members = union_names([p["members"] for p in parts])
    tasks = union_names([p["tasks"] for p in parts])
    splits = sorted({s for p in parts for s in p["rows"]})
    out: dict[str, Rows] = {}
    for split in splits:
        rows = own.get(split)
        ids = rows["example_id"] if rows is not None else np.empty(0, np.int64)
        keep = drop_shadowed(ids, [p["rows"].get(split, 0) for p in parts], rank)
        if rows is None or not keep.any():
            continue
        rows = rows if keep.all() else {k: v[keep] for k, v in rows.items()}
        rows["member_idx"] = to_union(rows["member_idx"], space.members.names, members)
        rows["task_idx"] = to_union(rows["task_idx"], space.tasks.names, tasks)
        rows["epoch"] = np.int32(epoch)
        out[split] = rows
    return out, (members, tasks), reduce_metrics(out, splits, members, rank)


def split_metrics(split: str, rows: Rows, members: list[str]) -> dict[str, float]:
    """``<split>/<member>/acc`` and ``/loss`` (and ``train/loss``) of one epoch's rows."""
    prefix = METRIC_PREFIX.get(split, metric_safe(split))
    correct = rows["pred"] == rows["gold"]
    out: dict[str, float] = {}
    if split == "train":
        out["train/loss"] = float(rows["loss"].mean(dtype=np.float64))
    for idx in np.unique(rows["member_idx"]):
        mask = rows["member_idx"] == idx
        name = metric_safe(members[int(idx)])
        out[f"{prefix}/{name}/acc"] = float(correct[mask].mean())
        out[f"{prefix}/{name}/loss"] = float(rows["loss"][mask].mean(dtype=np.float64))
    return out


def put_trace(
    spool: Spool,
    space: LabelSpace,
    split: str,
    epoch: int,
    rows: Rows,
    *,
    run_id: str | None,
    capture: str,
    source: str,
    axis: str | None,
    margin: bool,
    rank: int | None = None,
    names: tuple[list[str], list[str]] | None = None,
) -> None:
    """Put the trace file of (``split``, ``epoch``) into the spool, or with ``rank`` that
    rank's shard, whose member and task indices refer to ``names``; without ``margin``
    the margin column is left out."""
    if not margin:
        rows = {k: v for k, v in rows.items() if k != "margin"}
    members, tasks = names or (space.members.names, space.tasks.names)
    table = build_table(rows, list(members), list(tasks))
    meta = {
        "run_id": run_id,
        "split": split,
        "epoch": epoch,
        "capture": capture,
        "label_names": space.label_names(),
        "recorder": source,
    }
    if axis:
        meta["axis"] = axis
    name, folder = trace_file_name(epoch), trace_artifact_path(split)
    if rank is not None:
        meta["rank"] = rank
        name, folder = shard_file_name(rank), shard_artifact_path(split, epoch)
    spool.put_artifact(name, folder, lambda p: write_trace(p, table, meta))
