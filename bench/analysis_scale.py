"""The analysis at scale: per-run dynamics (SOI + cartography) of many runs on DuckDB
under a memory limit, next to the in-memory path, with peak resident memory and time.

Writes synthetic traces once into ``--folder`` (default 100 runs x 1,000,000 examples x
10 epochs = 1 billion rows, ~5 bytes a row; reused when the sizes match), then runs each
engine in its own process and reports its wall time and peak RSS (``wait4``), against
``--memory-limit``, which bounds the whole process (DuckDB's buffers get a share of it:
``analysis/duck/limits.py``):

- ``duckdb``: every run through ``soi_from_files`` on one connection with ``--memory-limit``;
- ``memory``: ``TraceMatrix.from_files`` + ``soi_from_matrix`` on the first
  ``--memory-runs`` runs (the in-memory path holds one run at a time);
- ``scan``: one query over every run's traces (``trace_relation``, the relation
  ``soi_mlflow.analysis.traces`` gives users): mean p_gold and accuracy per (run, epoch).

The two engines' SOI counts and mean confidence of the shared runs are checked equal.

    .venv/bin/python bench/analysis_scale.py --folder /tmp/soi-scale [--runs 100]
        [--examples 1000000] [--epochs 10] [--memory-limit 2GB] [--memory-runs 10]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from synthtraces import write_run  # noqa: E402  (the tests' generator)


def runs_of(folder: Path) -> dict[str, list[str]]:
    """run name -> its trace files, in epoch order."""
    return {
        run.name: [str(p) for p in sorted(run.glob("epoch=*.parquet"))]
        for run in sorted(folder.glob("run=*"))
    }


def write_once(folder: Path, runs: int, examples: int, epochs: int) -> float:
    """Write the traces unless ``folder`` already holds these sizes; seconds spent."""
    sizes = {"runs": runs, "examples": examples, "epochs": epochs}
    marker = folder / "sizes.json"
    if marker.exists() and json.loads(marker.read_text()) == sizes:
        return 0.0
    start = time.perf_counter()
    for r in range(runs):
        write_run(folder / f"run={r:03d}", examples, epochs, seed=r, first_id=r * examples)
        print(f"  wrote run {r + 1}/{runs}", end="\r", flush=True)
    print()
    marker.write_text(json.dumps(sizes))
    return time.perf_counter() - start


def within(peak_gib: float, memory_limit: str) -> str:
    """The peak resident memory against ``--memory-limit`` (the whole process's bound)."""
    from soi_mlflow.analysis.duck.limits import parse_size

    limit = parse_size(memory_limit, "--memory-limit")
    verdict = "within" if peak_gib * 2**30 <= limit else "OVER"
    return f"{verdict} the --memory-limit {memory_limit}: {peak_gib * 2**30 / limit:.0%} of it"


def summary(table) -> list[float]:
    """SOI counts (by name) and mean confidence; counted on the categories, since a string
    per example (``astype(str)``) took ~0.3 GB of the worker's peak at 1M examples."""
    counts = table["soi"].value_counts()
    counts = counts[counts > 0]
    counts.index = counts.index.astype(str)
    counts = counts.sort_index()
    return [*counts.tolist(), float(table["confidence"].mean())]


def worker(kind: str, folder: Path, memory_limit: str, memory_runs: int) -> None:
    """One engine over the runs; prints one JSON line per run summary."""
    from soi_mlflow.analysis.duck.engine import Engine
    from soi_mlflow.analysis.duck.files import file_rows
    from soi_mlflow.analysis.duck.limits import connection

    runs = runs_of(folder)
    engine = Engine.parse("duckdb", memory_limit)
    if kind == "memory":
        from soi_mlflow.analysis.from_traces import soi_from_matrix
        from soi_mlflow.analysis.matrix import TraceMatrix

        for name in list(runs)[:memory_runs]:
            table = soi_from_matrix(TraceMatrix.from_files(runs[name]))
            print(json.dumps({name: summary(table)}), flush=True)
        return
    with connection(engine.limits) as con:
        if kind == "scan":
            from soi_mlflow.analysis.duck.relation import trace_relation

            rel = trace_relation(file_rows(runs), con)
            rows = rel.aggregate(
                "run_id, epoch, avg(p_gold) AS p, avg((pred = gold)::INT) AS acc, count(*) AS n",
                "run_id, epoch",
            ).fetchall()
            print(json.dumps({"groups": len(rows), "rows": sum(r[4] for r in rows)}), flush=True)
            return
        from soi_mlflow.analysis.duck.dynamics import soi_from_files

        for name, paths in runs.items():
            files = file_rows(paths, name)
            table = soi_from_files(con, files, max_groups=engine.max_groups())
            print(json.dumps({name: summary(table)}), flush=True)
            del table  # not held while the next run is analysed


def measure(kind: str, args: argparse.Namespace) -> tuple[float, float, dict]:
    """Wall seconds, peak RSS (GiB) and the printed summaries of one worker process."""
    cmd = [sys.executable, __file__, "--worker", kind, "--folder", str(args.folder),
           "--memory-limit", args.memory_limit, "--memory-runs", str(args.memory_runs)]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{kind} worker failed")
    found: dict = {}
    for line in out.splitlines():
        found |= json.loads(line)
    return wall, usage.ru_maxrss / 2**20, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, required=True, help="traces are written here once")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--examples", type=int, default=1_000_000, help="per run")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--memory-limit", default="2GB", help="the analysing process's limit")
    parser.add_argument("--memory-runs", type=int, default=10, help="runs for the in-memory path")
    parser.add_argument("--worker", choices=["duckdb", "memory", "scan"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.folder, args.memory_limit, args.memory_runs)
        return
    rows = args.runs * args.examples * args.epochs
    print(f"{args.runs} runs x {args.examples:,} examples x {args.epochs} epochs = {rows:,} rows")
    wrote = write_once(args.folder, args.runs, args.examples, args.epochs)
    size = sum(p.stat().st_size for p in args.folder.rglob("*.parquet")) / 1e9
    print(f"traces: {size:.2f} GB of Parquet in {args.folder} (written in {wrote:.0f} s)")
    n_mem = min(args.memory_runs, args.runs)
    results = {}
    for kind in ("duckdb", "memory", "scan"):
        wall, peak, found = measure(kind, args)
        results[kind] = found
        runs = args.runs if kind != "memory" else n_mem
        what = {"duckdb": "per-run SOI + dynamics", "memory": "per-run SOI + dynamics",
                "scan": "one GROUP BY (run, epoch)"}[kind]  # fmt: skip
        print(
            f"{kind:>7}: {what} of {runs} run(s) ({runs * args.examples * args.epochs:,} rows): "
            f"{wall:7.1f} s, {wall / runs:6.2f} s/run, peak RSS {peak:5.2f} GiB"
            + (f" ({within(peak, args.memory_limit)})" if kind != "memory" else ""),
            flush=True,
        )
    shared = list(results["memory"])
    same = all(
        np.allclose(results["memory"][r], results["duckdb"][r], rtol=0, atol=1e-6) for r in shared
    )
    print(f"SOI counts and mean confidence of the {len(shared)} shared run(s) equal: {same}")


if __name__ == "__main__":
    main()
