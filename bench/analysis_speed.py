"""Speed and memory of SOI + cartography + forgetting, against a plain per-example loop.

Writes synthetic schema-v1 traces (default 1,000,000 examples x 10 epochs) to Parquet,
then times the analysis from those files (reading included) and measures its peak memory
beyond the loaded input; runs the straightforward per-example Python implementation
(``tests/reference.py``, the tests' oracle) on the same examples and checks that every value
agrees exactly. Targets: at most 2 s for 1M x 10, a few bytes per example-epoch beyond
the input. ``--visited F`` keeps a random fraction F of the examples in each epoch (as
uniform or temperature sampling does to a large member), which takes the slower path for
examples missing from some epochs.

    .venv/bin/python bench/analysis_speed.py [--examples 1000000] [--epochs 10] [--visited 0.6]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from soi_mlflow.analysis.matrix import TraceMatrix
from soi_mlflow.analysis.runs import soi_frame
from soi_mlflow.data.ids import index_ids
from soi_mlflow.tracking.trace_format import build_table, write_trace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from reference import example_dynamics, example_soi  # noqa: E402  (the tests' oracle)


def synthetic_traces(
    folder: Path, n: int, epochs: int, seed: int = 0, visited: float = 1.0
) -> list[Path]:
    """Examples with their own learning speed and noise, so every subset occurs; each
    epoch holds a random ``visited`` fraction of them."""
    rng = np.random.default_rng(seed)
    ids = index_ids("bench", "synthetic", "train", np.arange(n))
    speed = rng.normal(0.0, 1.5, n)
    noise = rng.uniform(0.2, 2.0, n)
    gold = rng.integers(0, 2, n)
    member = rng.integers(0, 3, n)
    paths = []
    for e in range(epochs):
        logit = speed * (e + 1) / epochs * 3 + rng.normal(0, 1, n) * noise
        p = (1 / (1 + np.exp(-logit))).astype(np.float32)
        pred = np.where(p > 0.5, gold, 1 - gold)
        keep = slice(None) if visited >= 1 else rng.random(n) < visited
        rows = {
            "example_id": ids[keep],
            "epoch": e,
            "step": np.full(n, e * 100)[keep],
            "member_idx": member[keep],
            "task_idx": np.zeros(n, dtype=int)[keep],
            "gold": gold[keep],
            "pred": pred[keep],
            "p_gold": p[keep],
            "loss": -np.log(np.maximum(p, 1e-12))[keep],
        }
        path = folder / f"epoch={e:03d}.parquet"
        write_trace(
            path, build_table(rows, ["a", "b", "c"], ["t"]), {"epoch": e, "capture": "train_pass"}
        )
        paths.append(path)
    return paths


def _mask(values: list, seen: list[bool]) -> list:
    return [v if o else None for v, o in zip(values, seen, strict=True)]


def _same(a: float, b: float) -> bool:
    """Equal bit for bit, or both NaN (too few observed epochs)."""
    return a == b or (a != a and b != b)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--examples", type=int, default=1_000_000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--visited", type=float, default=1.0, help="fraction of examples in each epoch"
    )
    parser.add_argument(
        "--reference-examples",
        type=int,
        default=None,
        help="examples the slow reference checks (default: all)",
    )
    args = parser.parse_args()
    n, e = args.examples, args.epochs
    folder = Path(tempfile.mkdtemp(prefix="soi-bench-analysis-"))
    t0 = time.perf_counter()
    paths = synthetic_traces(folder, n, e, visited=args.visited)
    size = sum(p.stat().st_size for p in paths)
    print(
        f"{n:,} examples x {e} epochs of synthetic traces ({args.visited:.0%} visited per "
        f"epoch): {size / 1e6:.1f} MB of Parquet "
        f"({size / (n * e):.2f} bytes per example-epoch), "
        f"written in {time.perf_counter() - t0:.1f} s"
    )

    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        frame = soi_frame(TraceMatrix.from_files(paths))
        times.append(time.perf_counter() - start)
    print(
        f"fast (read + SOI + cartography + forgetting): best {min(times):.2f} s, "
        f"median {sorted(times)[len(times) // 2]:.2f} s over {args.repeats} runs"
    )

    tm = TraceMatrix.from_files(paths)
    input_bytes = tm.p_gold.nbytes + tm.correct.nbytes + tm.example_id.nbytes + tm.gold.nbytes
    tracemalloc.start()
    soi_frame(tm)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"loaded input: {input_bytes / (n * e):.1f} bytes per example-epoch; "
        "analysis peak beyond it: "
        f"{peak / 1e6:.0f} MB = {peak / (n * e):.1f} bytes per example-epoch"
    )

    m = n if args.reference_examples is None else min(n, args.reference_examples)
    p_rows = tm.p_gold[:, :m].T.tolist()
    c_rows = tm.correct[:, :m].T.tolist()
    if tm.observed is not None:  # the reference takes None for an epoch not observed
        seen = tm.observed[:, :m].T.tolist()
        p_rows = [_mask(row, s) for row, s in zip(p_rows, seen, strict=True)]
        c_rows = [_mask(row, s) for row, s in zip(c_rows, seen, strict=True)]
    start = time.perf_counter()
    reference = [
        (example_dynamics(p, c), example_soi(c)) for p, c in zip(p_rows, c_rows, strict=True)
    ]
    ref_time = time.perf_counter() - start
    fast = frame.iloc[:m]
    keys = ["confidence", "variability", "correctness", "forgetting_events", "first_learned_epoch"]
    columns = {k: fast[k].to_numpy() for k in keys}
    soi = fast["soi"].astype(str).to_numpy()
    mismatches = sum(
        1
        for i, (dyn, name) in enumerate(reference)
        if name != soi[i] or not all(_same(dyn[k], columns[k][i]) for k in keys)
    )
    per_example = ref_time / m
    print(
        f"per-example Python reference on {m:,} examples: {ref_time:.1f} s "
        f"({per_example * n:.0f} s for {n:,}); fast is {per_example * n / min(times):.0f}x faster"
    )
    print(
        f"agreement: {m - mismatches:,} of {m:,} examples identical in every value "
        f"({mismatches} mismatches)"
    )
    counts = frame["soi"].value_counts()
    print("subsets: " + ", ".join(f"{k}={v:,}" for k, v in counts.items()))
    if mismatches:
        raise SystemExit("the fast code and the reference disagree")


if __name__ == "__main__":
    main()
