"""Shard mode under torch.distributed: each rank writes its own rows of an epoch
(``traces/<split>/epoch=NNN/rank=R.parquet``, ``names.py``) instead of gathering every
row to rank 0. Only small things cross between ranks, as tensors where they can: the row
counts that choose the mode, the run id, the member and task names, the example ids that
find duplicates (in bounded rounds), and the sums behind the epoch's metrics.

Exactness across shards. The gathered path concatenates the ranks' rows in rank order
and keeps each example's last row (``trace_rows.last_visit``): an example visited on
several ranks (a ``DistributedSampler``'s padding repeats the first examples on the last
ranks) counts with its visit on the highest rank that has it. Shard mode applies the
same rule where the rows are: each rank keeps its own last visits, then drops the
examples that a higher rank also holds (:func:`drop_shadowed`). The duplicates are
dropped at write time, not at read time, because the epoch's metrics are reduced from
per-rank sums (:func:`reduce_metrics`) and must count each example once, exactly as the
gathered path's do; shards are then disjoint, and the readers' rule (an epoch's files in
rank order, the last visit counts) changes nothing, but holds for any shards.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from soi_mlflow.errors import SoiInputError
from soi_mlflow.tracking.label_space import LabelSpace
from soi_mlflow.tracking.names import METRIC_PREFIX
from soi_mlflow.tracking.run import metric_safe

Rows = dict[str, np.ndarray]

# Rows per epoch (all splits, all ranks) past which ``shards=None`` writes shards. Below
# it the gather costs rank 0 at most ~200 MB for a moment (bench/ddp_shard_memory.py:
# ~200 bytes per row of the epoch, +199 MB at 1M rows on 2 ranks) and gives one file per
# epoch, which the store lists and the readers fetch in one request; above it that
# growth follows the whole epoch, a shard's only its rank's part (+86 MB at 1M rows).
SHARD_ROWS = 1_000_000
# Ids compared per round when looking for an example on several ranks: every rank holds
# about this many int64 ids (16 MB) of all ranks at a time, whatever the epoch's size.
ID_ROUND = 1 << 21


def choose_shards(requested: bool | None, local_rows: int) -> bool:
    """Shard mode for this epoch: ``requested`` if given, else whether the epoch's rows
    on all ranks together (an all-reduce, so every rank decides alike) pass
    :data:`SHARD_ROWS`. Collective when ``requested`` is None."""
    if requested is not None:
        return bool(requested)
    import torch
    import torch.distributed as dist

    total = torch.tensor([local_rows], dtype=torch.int64)
    dist.all_reduce(total)
    return int(total.item()) > SHARD_ROWS


def broadcast_text(text: str | None, src: int = 0) -> str:
    """``text`` of rank ``src`` on every rank (UTF-8 bytes in a tensor; no pickle)."""
    import torch
    import torch.distributed as dist

    data = (text or "").encode() if dist.get_rank() == src else b""
    size = torch.tensor([len(data)], dtype=torch.int64)
    dist.broadcast(size, src)
    buf = torch.zeros(int(size.item()), dtype=torch.uint8)
    if dist.get_rank() == src and data:
        buf[:] = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    dist.broadcast(buf, src)
    return bytes(buf.tolist()).decode()


def wait_for_shards(pending: int, rank: int) -> None:
    """Wait until every rank has sent its last shards (a collective); rank 0 says on
    stderr how many entries other ranks left in their spools (the store was away)."""
    import sys

    import torch
    import torch.distributed as dist

    total = torch.tensor([pending], dtype=torch.int64)
    dist.all_reduce(total)
    if rank == 0 and int(total.item()):
        print(
            f"soi-mlflow: {int(total.item())} trace shard(s) of other ranks wait in their "
            "machines' spools: run `soi-mlflow sync` there",
            file=sys.stderr,
        )


def exchange_names(
    space: LabelSpace, rows: dict[str, int], rank: int, error: str | None = None
) -> list[dict]:
    """Every rank's member and task names, row count per split and error (a bad batch
    found by its own checks), in rank order: a few names and numbers, which torch
    pickles between our own ranks. Rank 0 adopts the others' names, as the gathered
    path does, so its name tables stay the same. Every rank raises the first error, so
    none waits in a later collective for a rank that stopped."""
    import torch.distributed as dist

    payload = {
        "members": list(space.members.names),
        "tasks": list(space.tasks.names),
        "rows": rows,
        "error": error,
    }
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, payload)
    errors = [f"rank {q}: {p['error']}" for q, p in enumerate(parts) if p["error"]]
    if errors:
        raise SoiInputError(errors[0])
    if rank == 0:
        for part in parts:
            space.adopt(part["members"], part["tasks"])
    return parts


def union(lists: list[list[str]]) -> list[str]:
    """Names of several lists, each once, in first-seen order (rank 0's table order)."""
    seen: dict[str, None] = {}
    for names in lists:
        seen.update(dict.fromkeys(names))
    return list(seen)


def to_union(values: np.ndarray, own: list[str], names: list[str]) -> np.ndarray:
    """Indices into ``own`` names as indices into ``names``."""
    at = {n: i for i, n in enumerate(names)}
    mapping = np.array([at[n] for n in own], dtype=np.int32)
    return mapping[values] if len(values) else values.astype(np.int32)


def _buckets(ids: np.ndarray, count: int) -> np.ndarray:
    """A bucket in ``[0, count)`` per id, spread by a multiplicative hash (consecutive
    ids land in different buckets)."""
    mixed = ids.astype(np.int64).view(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    return ((mixed >> np.uint64(32)) % np.uint64(count)).astype(np.int64)


def drop_shadowed(ids: np.ndarray, counts: list[int], rank: int) -> np.ndarray:
    """Which of this rank's (distinct) ``ids`` no higher rank also holds: a keep mask.

    ``counts``: every rank's number of ids. Collective. The ids cross in rounds of hash
    buckets, at most :data:`ID_ROUND` ids of all ranks together per round, so no rank
    ever holds more than that of the others' ids (plus its own)."""
    keep = np.ones(len(ids), dtype=bool)
    if sum(1 for c in counts if c) < 2:  # on one rank at most: nothing to compare
        return keep
    import torch
    import torch.distributed as dist

    world = len(counts)
    rounds = max(1, math.ceil(world * max(counts) / ID_ROUND))
    bucket = _buckets(ids, rounds)
    sizes = torch.from_numpy(np.bincount(bucket, minlength=rounds).astype(np.int64))
    all_sizes = [torch.zeros_like(sizes) for _ in range(world)]
    dist.all_gather(all_sizes, sizes)
    table = torch.stack(all_sizes).numpy()  # (world, rounds)
    for b in range(rounds):
        width = int(table[:, b].max())  # the same on every rank: all take part or none
        if width == 0:
            continue
        mine = np.flatnonzero(bucket == b)
        got = _gather_ids(ids[mine], width, world)
        if rank + 1 < world:
            higher = np.concatenate([got[q][: table[q, b]] for q in range(rank + 1, world)])
            keep[mine[np.isin(ids[mine], higher)]] = False
    return keep


def _gather_ids(ids: np.ndarray, width: int, world: int) -> list[np.ndarray]:
    """Every rank's ``ids``, each padded to ``width``."""
    import torch
    import torch.distributed as dist

    padded = torch.zeros(width, dtype=torch.int64)
    padded[: len(ids)] = torch.from_numpy(np.ascontiguousarray(ids, dtype=np.int64))
    out = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(out, padded)
    return [t.numpy() for t in out]


def reduce_metrics(
    parts: dict[str, Rows], splits: list[str], members: list[str], rank: int
) -> dict[str, float]:
    """The epoch's ``<split>/<member>/acc`` and ``/loss`` (and ``train/loss``) from every
    rank's rows (``member_idx`` indexing ``members``): per member a count, the correct
    rows and the sum of losses (float64), all-reduced in one tensor. The same values as
    ``epoch_writer.split_metrics`` over the gathered rows; on rank 0 (empty elsewhere)."""
    import torch
    import torch.distributed as dist

    sums = np.zeros((len(splits), len(members), 3), dtype=np.float64)
    for s, split in enumerate(splits):
        rows = parts.get(split)
        if rows is None or not len(rows["example_id"]):
            continue
        idx = rows["member_idx"].astype(np.int64)
        correct = (rows["pred"] == rows["gold"]).astype(np.float64)
        sums[s, :, 0] = np.bincount(idx, minlength=len(members))
        sums[s, :, 1] = np.bincount(idx, weights=correct, minlength=len(members))
        loss = rows["loss"].astype(np.float64)
        sums[s, :, 2] = np.bincount(idx, weights=loss, minlength=len(members))
    total = torch.from_numpy(sums)
    dist.all_reduce(total)
    if rank != 0:
        return {}
    sums = total.numpy()
    out: dict[str, float] = {}
    for s, split in enumerate(splits):
        prefix = METRIC_PREFIX.get(split, metric_safe(split))
        n = sums[s, :, 0]
        if split == "train" and n.sum():
            out["train/loss"] = float(sums[s, :, 2].sum() / n.sum())
        for m in np.flatnonzero(n):
            name = metric_safe(members[int(m)])
            out[f"{prefix}/{name}/acc"] = float(sums[s, m, 1] / n[m])
            out[f"{prefix}/{name}/loss"] = float(sums[s, m, 2] / n[m])
    return out
