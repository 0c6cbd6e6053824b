"""Which engine analyses a run: in memory (``matrix.py``) or DuckDB, out of core.

``auto`` (the default) keeps the in-memory path while a run's traces take at most half
the memory limit once loaded (``IN_MEMORY_BYTES_PER_ROW`` per trace row, counted from the
Parquet footers without reading any data), and uses DuckDB past that. Why: below the limit
the in-memory path is faster (no SQL planning, one read per file) and bit-identical to
the tests' reference; past it, it would exhaust the machine, while DuckDB holds its
working set under the limit and spills the rest to a bounded folder. Both give the same
tables to 1e-6.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from soi_mlflow.analysis.duck.dynamics import BYTES_PER_GROUP, soi_from_files
from soi_mlflow.analysis.duck.files import file_rows
from soi_mlflow.analysis.duck.limits import Limits, connection
from soi_mlflow.analysis.matrix import MIN_OBSERVED
from soi_mlflow.analysis.runs import (
    _run_examples,
    naming_the_run,
    soi_table,
    trace_files,
    trace_paths,
)
from soi_mlflow.analysis.soi import Taxonomy, get_taxonomy
from soi_mlflow.errors import SoiInputError, first_line
from soi_mlflow.tracking.trace_format import open_trace

ENGINES = ("auto", "memory", "duckdb")
# TraceMatrix.from_files holds every epoch's ids, gold, pred and p_gold (20 B a row), then
# the matrix (p_gold, correct, observed: 6 B) and the per-example output: ~32 B a row.
IN_MEMORY_BYTES_PER_ROW = 32


@dataclass(frozen=True)
class Engine:
    """``kind``: auto, memory or duckdb; ``limits``: DuckDB's memory and spill bounds."""

    kind: str = "auto"
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def parse(
        cls, kind: str = "auto", memory_limit: str | None = None, spill_limit: str | None = None
    ) -> Engine:
        """From the ``analyze`` options; a clear error naming the option otherwise."""
        if kind not in ENGINES:
            raise SoiInputError(f"--engine: expected one of {', '.join(ENGINES)}, got {kind!r}")
        return cls(kind, Limits.parse(memory_limit, spill_limit))

    def max_groups(self) -> int:
        """Examples one DuckDB GROUP BY takes at a time (more: per example-id range)."""
        return max(1, self.limits.duckdb_bytes // BYTES_PER_GROUP)

    def choose(self, paths: Sequence[str | Path], filesystem: Any = None) -> str:
        """``memory`` or ``duckdb`` for a run whose trace files are ``paths`` (on
        ``filesystem``; None: local paths), from their footers only."""
        if self.kind != "auto":
            return self.kind
        held = in_memory_bytes(paths, filesystem)
        return "duckdb" if held > self.limits.memory_bytes // 2 else "memory"


def in_memory_bytes(paths: Sequence[str | Path], filesystem: Any = None) -> int:
    """What the in-memory path would hold for these trace files, from their footers
    (over a remote ``filesystem``, a range request per file, not a download)."""
    rows = 0
    for path in paths:
        with open_trace(path, filesystem) as pf:
            rows += pf.metadata.num_rows
    return rows * IN_MEMORY_BYTES_PER_ROW


def engine_soi_table(
    engine: Engine,
    run_id: str,
    split: str = "train",
    taxonomy: str | Taxonomy = "default",
    tracking_uri: str | None = None,
    split_epoch: int | None = None,
    min_observed: int = MIN_OBSERVED,
) -> pd.DataFrame:
    """``runs.soi_table`` on the engine ``engine`` chooses for this run; ``attrs["engine"]``
    says which one ran."""
    get_taxonomy(taxonomy)
    found = trace_files(run_id, split, tracking_uri)  # read where they are, not downloaded
    with naming_the_run(run_id, split, found):
        kind = engine.choose(found.paths, found.filesystem)
    if kind == "memory":
        table = soi_table(run_id, split, taxonomy, tracking_uri, split_epoch, min_observed)
    else:
        paths = trace_paths(run_id, split, tracking_uri)  # DuckDB reads local files
        examples = _run_examples(run_id, split, tracking_uri)
        table = duckdb_soi_table(
            engine, run_id, split, paths, taxonomy, split_epoch, min_observed, examples
        )
    table.attrs |= {"run_id": run_id, "split": split, "engine": kind}
    return table


def duckdb_soi_table(
    engine: Engine,
    run_id: str,
    split: str,
    paths: Sequence[str | Path],
    taxonomy: str | Taxonomy = "default",
    split_epoch: int | None = None,
    min_observed: int = MIN_OBSERVED,
    examples: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The SOI table of one run's trace files on DuckDB, under ``engine.limits``; DuckDB's
    errors (an unreadable file, the spill limit reached) name the run."""
    import duckdb

    files = file_rows(paths, run_id)
    try:
        with connection(engine.limits) as con:
            return soi_from_files(
                con, files, taxonomy, split_epoch, min_observed, examples, engine.max_groups()
            )
    except duckdb.OutOfMemoryException as exc:
        raise SoiInputError(
            f"run {run_id}, split {split!r}: DuckDB ran out of memory or spill space "
            f"({first_line(exc)}); raise --memory-limit or --spill-limit"
        ) from None
    except duckdb.Error as exc:
        raise SoiInputError(
            f"run {run_id}: trace files of split {split!r} cannot be read: {first_line(exc)}"
        ) from None
