"""Rank 0's memory at the end of an epoch under torch.distributed: gathered vs sharded.

For each number of rows per epoch, two fresh gloo process groups of ``--world`` CPU
processes (one gathering every row to rank 0, ``shards=False``; one writing a shard per
rank, ``shards=True``) record one epoch of synthetic logits through the recorder API, as
a ``DistributedSampler`` would hand them out (the last rank repeats an example), then end
the epoch and close, which writes the trace into a SQLite store. Printed side by side:
rank 0's resident memory before ``end_epoch`` (its own rows held), its peak during
``end_epoch`` + ``close``, the growth, and the time they took.

    .venv/bin/python bench/ddp_shard_memory.py [--rows 100000,1000000,4000000] [--world 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import socket
import tempfile
import time
from pathlib import Path

BATCH = 65_536
MB = 1024 * 1024


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _worker(rank: int, world: int, port: int, rows: int, shards: bool, uri: str, out: str):
    import mlflow  # noqa: F401 - configures its logger, quieted next
    import numpy as np
    import torch
    import torch.distributed as dist

    from soi_mlflow.tracking.recorder import TraceRecorder

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # no store set-up lines
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        rec = TraceRecorder(  # the close timed is the write alone, not the analysis
            tracking_uri=uri, experiment="bench-shards", shards=shards, analyze=False
        )
        padded = -(-rows // world) * world  # DistributedSampler: repeat the first ones
        mine = np.arange(rank, padded, world) % rows
        gen = torch.Generator().manual_seed(rank)
        for start in range(0, len(mine), BATCH):
            ids = torch.from_numpy(mine[start : start + BATCH])
            logits = torch.randn(len(ids), 2, generator=gen)
            labels = (ids % 2).long()
            rec.add("train", ids, logits, labels, member=np.where(ids % 3 == 0, "a", "b"))
        dist.barrier()
        before, start = _rss(), time.perf_counter()
        rec.end_epoch(0)
        rec.close()
        seconds = time.perf_counter() - start
        if rank == 0:
            result = {"before": before, "peak": _peak(), "seconds": seconds}
            Path(out).write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def measure(rows: int, shards: bool, world: int, folder: Path) -> dict:
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"sqlite:///{folder}/bench.db"
    out = folder / f"{rows}-{shards}.json"
    mp.spawn(_worker, args=(world, port, rows, shards, uri, str(out)), nprocs=world)
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", default="100000,1000000,4000000", help="rows per epoch")
    parser.add_argument("--world", type=int, default=2)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="soi-bench-shards-"))
    os.environ["SOI_MLFLOW_CACHE"] = str(folder / "cache")
    os.chdir(folder)
    print(f"{args.world} gloo processes, one epoch; rank 0's resident memory in MB")
    head = (
        f"{'rows/epoch':>11} | {'gather: before':>14} {'peak':>6} {'+':>6} {'s':>5} | "
        f"{'shards: before':>14} {'peak':>6} {'+':>6} {'s':>5}"
    )
    print(head)
    print("-" * len(head))
    for rows in (int(float(r)) for r in args.rows.split(",")):
        cells = []
        for shards in (False, True):
            m = measure(rows, shards, args.world, folder)
            grow = (m["peak"] - m["before"]) / MB
            cells.append(
                f"{m['before'] / MB:>14.0f} {m['peak'] / MB:>6.0f} {grow:>6.0f} "
                f"{m['seconds']:>5.1f}"
            )
        print(f"{rows:>11,} | {cells[0]} | {cells[1]}", flush=True)


if __name__ == "__main__":
    main()
