"""Bytes per example-epoch of each trace column, as written and under other encodings:
what the choices in ``tracking/trace_format.py`` rest on. Trains the demo-size run of
``trace_overhead.py`` once (tiny encoder, 3 members x 1,000 training and 200 evaluation
examples each, train_pass, 2 epochs) against a fresh SQLite store, then for the last
epoch's train and evaluation files prints each column's compressed bytes per row as
written, the footer's share, and the same column written alone with other encodings
(zstd 9 unless named; ``bss``: byte-stream-split, ``delta``: delta-binary-packed,
``dict``: dictionary/RLE).

    .venv/bin/python bench/trace_bytes.py [--examples 1000] [--epochs 2]
    .venv/bin/python bench/trace_bytes.py --tracking-uri URI --run-id ID   # a run's files
    .venv/bin/python bench/trace_bytes.py --tracking-uri URI --experiment soi-demo  # all of them
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import warnings
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from mlflow import MlflowClient
from trace_overhead import MEMBERS, one_run

from soi_mlflow.data.mixture import Mixture, MixtureSpec

CANDIDATES = {
    "plain": {"use_dictionary": False},
    "plain z19": {"use_dictionary": False, "compression_level": 19},
    "dict": {"use_dictionary": True},
    "delta": {"use_dictionary": False, "encoding": "DELTA_BINARY_PACKED"},
    "bss": {"use_dictionary": False, "encoding": "BYTE_STREAM_SPLIT"},
    "bss z19": {"use_dictionary": False, "encoding": "BYTE_STREAM_SPLIT", "compression_level": 19},
}


def alone(table: pa.Table, column: str, option: dict) -> int | None:
    """Compressed bytes of ``column`` written alone with ``option`` (None: not allowed)."""
    option = dict(option)
    encoding = option.pop("encoding", None)
    buf = io.BytesIO()
    try:
        pq.write_table(
            table.select([column]),
            buf,
            compression="zstd",
            compression_level=option.pop("compression_level", 9),
            column_encoding={column: encoding} if encoding else None,
            write_statistics=False,
            data_page_version="2.0",
            **option,
        )
    except (pa.ArrowException, ValueError, OSError):
        return None
    return (
        pq.read_metadata(pa.BufferReader(buf.getvalue()))
        .row_group(0)
        .column(0)
        .total_compressed_size
    )


def report(paths: list[Path], label: str) -> None:
    rows = sum(pq.read_metadata(p).num_rows for p in paths)
    total = sum(p.stat().st_size for p in paths)
    tables = [pq.read_table(p) for p in paths]
    names = list(dict.fromkeys(n for t in tables for n in t.column_names))
    print(f"\n{label}: {len(paths)} file(s), {rows:,} rows, {total / rows:.2f} B per row in all")
    print(f"{'column':<11} {'written':>8} " + " ".join(f"{c:>9}" for c in CANDIDATES))
    for name in names:
        holding = [(p, t) for p, t in zip(paths, tables, strict=True) if name in t.column_names]
        written = sum(
            md.row_group(0).column(md.schema.names.index(name)).total_compressed_size
            for md in (pq.read_metadata(p) for p, _ in holding)
        )
        cells = []
        for option in CANDIDATES.values():
            sizes = [alone(t, name, option) for _, t in holding]
            cells.append("-" if None in sizes else f"{sum(sizes) / rows:.3f}")
        print(f"{name:<11} {written / rows:>8.3f} " + " ".join(f"{c:>9}" for c in cells))
    footer = sum(pq.read_metadata(p).serialized_size for p in paths)
    print(f"{'footer':<11} {footer / rows:>8.3f}  ({footer // len(paths)} B a file)")
    absent = {n: sum(n not in t.column_names for t in tables) for n in ("epoch", "step", "loss")}
    print(
        "left out (schema v3: constant, or derived in every row): "
        + ", ".join(f"{n} in {k} of {len(paths)} files" for n, k in absent.items())
    )


def experiment_files(uri: str, experiment: str) -> tuple[list[Path], list[Path]]:
    """Every train and every evaluation trace file of the runs of ``experiment``."""
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise SystemExit(f"no experiment {experiment!r} in {uri}")
    train, evaluation = [], []
    for run in client.search_runs([found.experiment_id], max_results=10_000):
        root = Path(run.info.artifact_uri.removeprefix("file://")) / "traces"
        for path in sorted(root.glob("*/epoch=*.parquet")):
            (train if path.parent.name == "train" else evaluation).append(path)
    return train, evaluation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1000, help="training examples per member")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--run-id", help="measure this run's traces instead of a new run")
    parser.add_argument(
        "--experiment", help="measure every run of this experiment (e.g. soi-demo) instead"
    )
    parser.add_argument("--tracking-uri", help="the store of --run-id or --experiment")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    if args.run_id:
        measure(args.tracking_uri, args.run_id, args.epochs)
        return
    if args.experiment:
        train, evaluation = experiment_files(args.tracking_uri, args.experiment)
        report(train, f"train traces of {args.experiment!r}, every run and epoch")
        report(evaluation, f"evaluation traces of {args.experiment!r}, every run and epoch")
        return
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    here = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="soi-bytes-", dir=base) as folder:  # removed after
        os.chdir(folder)
        try:
            uri = f"sqlite:///{folder}/mlflow.db"
            spec = MixtureSpec(
                "builtin", "source", MEMBERS, max_examples=args.examples, eval_max_examples=200
            )
            run_id = one_run(
                Mixture(spec), args.epochs, traced=True, uri=uri, capture="train_pass"
            )[3]
            print(f"run {run_id} in a temporary store (--run-id measures a run you keep)")
            measure(uri, run_id, args.epochs)
        finally:
            os.chdir(here)


def measure(uri: str, run_id: str, epochs: int) -> None:
    """The table of the last epoch's train and evaluation files of ``run_id``."""
    root = Path(MlflowClient(uri).get_run(run_id).info.artifact_uri.removeprefix("file://"))
    last = f"epoch={epochs - 1:03d}.parquet"
    report([root / "traces" / "train" / last], "train trace, last epoch")
    report([root / "traces" / s / last for s in ("validation", "test")], "evaluation traces")


if __name__ == "__main__":
    main()
