"""Trace files as rows (run, epoch, path), in the order the analysis reads them.

MLflow's artifact paths are not hive-partitioned, so the files are always listed
explicitly. An epoch may have several files (DDP shards): ``traces/<split>/epoch=NNN.parquet``
or ``traces/<split>/epoch=NNN/rank=R.parquet``. Within an epoch, files are read in rank
order, so "the last visit" of an example (``matrix.py``) is the last row of the last shard
that holds it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from soi_mlflow.errors import SoiInputError
from soi_mlflow.tracking.names import parse_trace_path


@dataclass(frozen=True, order=True)
class TraceFile:
    """One trace file: its run, its epoch and its shard (rank; 0 when not sharded)."""

    run_id: str
    epoch: int
    rank: int
    path: str


def epoch_of(path: str | Path) -> tuple[int, int]:
    """(epoch, rank) from a trace file's path: ``epoch=NNN.parquet`` (rank 0) or
    ``epoch=NNN/rank=R.parquet``."""
    found = parse_trace_path(path)
    if found is None:
        raise SoiInputError(
            f"trace file {str(path)!r}: expected a path ending in epoch=NNN.parquet or "
            "epoch=NNN/rank=R.parquet"
        )
    return found[0], found[1] or 0


def _rows(run_id: str, items: Iterable) -> list[TraceFile]:
    out = []
    for item in items:
        if isinstance(item, (str, Path)):
            epoch, rank = epoch_of(item)
            out.append(TraceFile(run_id, epoch, rank, str(item)))
        else:
            epoch, path = item
            out.append(TraceFile(run_id, int(epoch), len(out), str(path)))
    return out


def file_rows(
    source: Mapping[str, Sequence] | Sequence[str | Path], run_id: str = "run"
) -> list[TraceFile]:
    """Trace files sorted by (run, epoch, rank), from a mapping ``run -> [(epoch, path),
    ...]`` or ``run -> [path, ...]``, or from a list of paths of one run (``run_id``).

    With (epoch, path) pairs, several files of one epoch keep the order given."""
    if isinstance(source, Mapping):
        rows = [f for run, items in source.items() for f in _rows(str(run), items)]
    else:
        rows = _rows(run_id, source)
    if not rows:
        raise SoiInputError("trace files: expected at least one file, got none")
    return sorted(rows)


def epoch_positions(files: Sequence[TraceFile]) -> list[int]:
    """Per file, the 0-based position of its epoch among the run's distinct epochs (the
    ``e`` of ``first_learned_epoch = e + 1`` in ``cartography.dynamics``)."""
    runs: dict[str, list[int]] = {}
    for f in files:
        runs.setdefault(f.run_id, []).append(f.epoch)
    order = {run: {e: k for k, e in enumerate(sorted(set(es)))} for run, es in runs.items()}
    return [order[f.run_id][f.epoch] for f in files]
