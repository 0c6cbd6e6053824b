"""The trace path's fixed cost per epoch, without a model: the shape of
``bench/trace_overhead.py``'s run (3 members; 3,000 train, 600 validation and 600 test
rows an epoch in batches of 32, 3 classes), ready tensors, a real SQLite store on the
disk, as that benchmark has it. Prints, per epoch (median over epochs after a warm-up):
the caller's wall milliseconds in ``add`` and ``end_epoch``, the writer thread's CPU
milliseconds (``own_time.py``'s definition), and the writer's CPU inside MLflow's
``log_batch`` and ``log_artifact`` calls, with their count. Issue #27's own-time target
(1 % of training) is about 11 ms an epoch at this machine's 3,000 examples a second.

    .venv/bin/python bench/epoch_cost.py [--epochs 12]
"""

from __future__ import annotations

import argparse
import functools
import shutil
import statistics
import tempfile
import time
from collections import defaultdict

import torch
from mlflow import MlflowClient
from own_time import install, take_parts

from soi_mlflow.tracking.recorder import TraceRecorder

SPLITS = {"train": 3000, "validation": 600, "test": 600}
MEMBERS = ("books", "movies", "electronics")
CALLED: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])  # CPU seconds, calls


def count_cpu(name: str) -> None:
    """Count the calling thread's CPU seconds inside ``MlflowClient.<name>``."""
    method = getattr(MlflowClient, name)

    @functools.wraps(method)
    def timed(*args, **kwargs):
        start = time.thread_time()
        try:
            return method(*args, **kwargs)
        finally:
            CALLED[name][0] += time.thread_time() - start
            CALLED[name][1] += 1

    setattr(MlflowClient, name, timed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    install()
    for name in ("log_batch", "log_artifact"):
        count_cpu(name)
    g = torch.Generator().manual_seed(0)
    data = {
        split: (
            torch.arange(n) + 10_000 * i,
            torch.randn(n, 3, generator=g),
            torch.randint(0, 3, (n,), generator=g),
            [MEMBERS[j % 3] for j in range(n)],
        )
        for i, (split, n) in enumerate(SPLITS.items())
    }
    folder = tempfile.mkdtemp(prefix="soi-epoch-cost-")
    per_epoch: list[tuple[float, float]] = []
    calls: list[dict[str, tuple[float, int]]] = []
    try:
        rec = TraceRecorder(
            tracking_uri=f"sqlite:///{folder}/mlflow.db",
            label_names=["a", "b", "c"],
            experiment="epoch-cost",
            analyze=False,
        )
        for epoch in range(args.warmup + args.epochs):
            take_parts()
            CALLED.clear()
            for split, (ids, logits, labels, members) in data.items():
                for at in range(0, len(ids), 32):
                    rows = slice(at, at + 32)
                    rec.add(split, ids[rows], logits[rows], labels[rows], member=members[rows])
            rec.end_epoch()
            rec.flush()
            if epoch >= args.warmup:
                per_epoch.append(take_parts())
                calls.append({k: (v[0], v[1]) for k, v in CALLED.items()})
        rec.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    caller = statistics.median(c for c, _ in per_epoch) * 1000
    writer = statistics.median(w for _, w in per_epoch) * 1000
    print(
        f"per epoch, median of {args.epochs}: {caller:.1f} ms on the caller's thread (add, "
        f"end_epoch), {writer:.1f} ms of the writer thread's CPU, {caller + writer:.1f} ms "
        "in all"
    )
    for name in ("log_batch", "log_artifact"):
        cpu = statistics.median(c.get(name, (0.0, 0))[0] for c in calls) * 1000
        n = statistics.median(c.get(name, (0.0, 0))[1] for c in calls)
        print(f"  of the writer's CPU, in MlflowClient.{name}: {cpu:.1f} ms ({n:g} calls)")


if __name__ == "__main__":
    main()
