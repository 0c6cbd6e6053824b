"""The trace recorder alone at full speed: ready tensors, no model, against a real SQLite
store (on /dev/shm when it exists). Batches of 256 rows sliced from preallocated tensors
go through ``TraceRecorder.add``, then ``end_epoch``; prints the caller's time per
example (inside ``add``; inside ``end_epoch``) and the background writer's throughput
(rows per second from the end of the epoch until its file and metrics are stored).
Target: at most 0.3 µs per example on the caller's thread in ``add``, and the writer at
1M examples per second.

    .venv/bin/python bench/recorder_speed.py [--examples 1000000] [--epochs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch

from soi_mlflow.tracking.recorder import TraceRecorder


def one_epoch(
    rec: TraceRecorder, ids: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, batch: int
) -> tuple[float, float, float]:
    """Seconds inside add, inside end_epoch, and until the writer has stored the epoch."""
    n = len(ids)
    in_add = 0.0
    for start in range(0, n, batch):
        rows = slice(start, start + batch)
        i, x, y = ids[rows], logits[rows], labels[rows]
        t0 = time.perf_counter()
        rec.add("train", i, x, y)
        in_add += time.perf_counter() - t0
    t0 = time.perf_counter()
    rec.end_epoch()
    t1 = time.perf_counter()
    rec.flush()
    return in_add, t1 - t0, time.perf_counter() - t1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1_000_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--classes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch's CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    n = args.examples
    ids = torch.randperm(n, generator=g)  # a shuffled epoch's order
    logits = torch.randn(n, args.classes, generator=g) * 2
    labels = torch.randint(0, args.classes, (n,), generator=g)
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(dir=base) as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        names = [f"c{i}" for i in range(args.classes)]
        with TraceRecorder(tracking_uri=uri, label_names=names, analyze=False) as rec:
            one_epoch(rec, ids[: 16 * args.batch], logits, labels, args.batch)  # warm-up
            rows = [one_epoch(rec, ids, logits, labels, args.batch) for _ in range(args.epochs)]
    add_s, end_s, write_s = (statistics.median(col) for col in zip(*rows, strict=True))
    print(
        f"recorder alone: {n:,} examples x {args.epochs} epochs, batches of {args.batch}, "
        f"{args.classes} classes, torch threads {args.threads} (median epoch)"
    )
    print(f"  caller, in add:       {add_s / n * 1e6:.3f} µs/example (target <= 0.3)")
    print(f"  caller, in end_epoch: {end_s / n * 1e6:.3f} µs/example")
    print(f"  writer:               {n / write_s / 1e6:.2f} M examples/s (target >= 1)")


if __name__ == "__main__":
    main()
