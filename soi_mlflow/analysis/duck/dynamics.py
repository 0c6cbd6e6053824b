"""Per-example dynamics and SOI tables of one run, on DuckDB over its trace files.

Mirrors ``cartography.dynamics`` over a ``TraceMatrix`` (``matrix.py``), to 1e-6:

- an example's observations are its rows, one per epoch; when an example has several rows
  in one epoch the last counts (file order, then row order: ``ord``);
- ``confidence``/``variability``/``correctness`` are the mean, population std and share
  correct over the observed epochs, NaN below ``required_observations``;
- ``forgetting_events`` (correct -> wrong between consecutive observations),
  ``first_learned_epoch`` (1-based position among the run's epochs), ``last_correct``
  come from per-example bit masks of the observed and correct epochs
  (``bit_or(c << e)``: one pass, no window function);
- ``member`` is the latest observation's; its categories are the last epoch file's
  dictionary when every example is in every epoch, else the sorted names (as
  ``TraceMatrix`` does).

One GROUP BY per run, and per example-id range when a run has more examples than the
memory limit holds comfortably (``max_groups``); each range reads only its rows (the
files are sorted by ``example_id``, so DuckDB skips row groups by their statistics).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from soi_mlflow.analysis.duck.files import TraceFile, epoch_positions
from soi_mlflow.analysis.from_traces import soi_from_dynamics
from soi_mlflow.analysis.matrix import MIN_OBSERVED, required_observations
from soi_mlflow.analysis.soi import Taxonomy
from soi_mlflow.errors import SoiInputError

BYTES_PER_GROUP = 512  # per example: past this share of the limit, id ranges beat spilling
WORD = 64  # epochs per bit-mask word

_ROWS = """SELECT example_id, p_gold::DOUBLE AS p, (pred = gold) AS c, member,
    $pos[file_index::BIGINT + 1]::UBIGINT AS e, (file_index::BIGINT << 40) + file_row_number AS ord
  FROM read_parquet($files, file_row_number = true)
  WHERE example_id BETWEEN $lo AND $hi"""
_LAST_VISITS = """SELECT example_id, e, arg_max(p, ord) AS p, arg_max(c, ord) AS c,
    arg_max(member, ord) AS member, max(ord) AS ord
  FROM ({rows}) GROUP BY example_id, e"""


def _masks(words: int) -> str:
    if words == 1:
        return "bit_or(c::UBIGINT << e) AS cmask0, bit_or(1::UBIGINT << e) AS omask0"
    # e is UBIGINT: a shift of a UBIGINT by an INTEGER would widen to HUGEINT
    out = []
    for w in range(words):
        pick = f"CASE WHEN e // {WORD} = {w} THEN {{}}::UBIGINT << (e % {WORD}) ELSE 0::UBIGINT END"
        out.append(f"bit_or({pick.format('c')}) AS cmask{w}")
        out.append(f"bit_or({pick.format('1')}) AS omask{w}")
    return ", ".join(out)


def _query(words: int, last_visits: bool) -> str:
    rows = _LAST_VISITS.format(rows=_ROWS) if last_visits else _ROWS
    return f"""SELECT example_id, count(*)::INTEGER AS n_rows, sum(p) AS p_sum,
    var_pop(p) AS p_var, count_if(c)::INTEGER AS n_correct, {_masks(words)},
    arg_max(member, ord) AS member
  FROM ({rows}) GROUP BY example_id ORDER BY example_id"""


def _ranges(con, paths: list[str], n_epochs: int, max_groups: int) -> list[tuple[int, int]]:
    """Example-id ranges (inclusive) of at most about ``max_groups`` examples each."""
    lo, hi, rows = con.sql(
        "SELECT min(example_id), max(example_id), count(*) FROM read_parquet($files)",
        params={"files": paths},
    ).fetchall()[0]
    if not rows:
        return []
    groups = -(-rows // n_epochs)  # about the run's examples
    chunks = 1 if groups <= max_groups else min(-(-groups // max(max_groups, 1)), hi - lo + 1)
    edges = [lo + (hi - lo + 1) * k // chunks for k in range(chunks)]
    return [(a, b - 1) for a, b in zip(edges, edges[1:], strict=False)] + [(edges[-1], hi)]


def _chunk(con, paths, positions, words, lo, hi) -> pa.Table:
    params = {"files": paths, "pos": positions, "lo": lo, "hi": hi}
    table = con.sql(_query(words, False), params=params).to_arrow_table()
    observed = sum(
        np.bitwise_count(table.column(f"omask{w}").to_numpy()).astype(np.int64)
        for w in range(words)
    )
    if np.array_equal(observed, table.column("n_rows").to_numpy()):
        return table
    # some example has several rows in one epoch: keep its last visit there, then aggregate
    return con.sql(_query(words, True), params=params).to_arrow_table()


def _bits(table: pa.Table, prefix: str, e: int) -> np.ndarray:
    word = table.column(f"{prefix}{e // WORD}").to_numpy()
    return ((word >> np.uint64(e % WORD)) & np.uint64(1)).astype(bool)


def _file_categories(paths: Sequence[str]) -> list[str]:
    """The member names of files as ``open_trace(...).read().to_pandas()`` gives them:
    each chunk's dictionary in order, new names appended."""
    names: dict[str, None] = {}
    for path in paths:
        for batch in pq.ParquetFile(path, read_dictionary=["member"]).iter_batches(
            columns=["member"]
        ):
            column = batch.column(0)
            values = column.dictionary if pa.types.is_dictionary(column.type) else column.unique()
            names |= dict.fromkeys(str(v) for v in values.to_pylist() if v is not None)
    return list(names)


def run_dynamics(
    con, files: Sequence[TraceFile], min_observed: int = MIN_OBSERVED, max_groups: int = 10**7
) -> pd.DataFrame:
    """``cartography.dynamics`` of one run's trace files, on DuckDB connection ``con``.

    ``attrs``: ``epochs`` (the run's number of epochs) and ``chunks`` (id ranges read)."""
    if len({f.run_id for f in files}) != 1:
        raise SoiInputError("run_dynamics: expected the trace files of exactly one run")
    paths = [f.path for f in files]
    positions = epoch_positions(files)
    n_epochs = max(positions) + 1
    words = -(-n_epochs // WORD)
    ranges = _ranges(con, paths, n_epochs, max_groups)
    if not ranges:
        raise SoiInputError(f"run {files[0].run_id}: its trace files hold no rows")
    parts = [_chunk(con, paths, positions, words, lo, hi) for lo, hi in ranges]
    table = pa.concat_tables(parts)
    n_observed = table.column("n_rows").to_numpy().astype(np.int32)
    n = len(n_observed)
    forgetting = np.zeros(n, dtype=np.int32)
    first = np.zeros(n, dtype=np.int32)
    last = np.zeros(n, dtype=bool)
    for e in range(n_epochs):
        seen, c = _bits(table, "omask", e), _bits(table, "cmask", e)
        forgetting += seen & last & ~c
        first[(first == 0) & c] = e + 1
        last = np.where(seen, c, last)
    n_correct = table.column("n_correct").to_numpy().astype(np.int32)
    confidence = table.column("p_sum").to_numpy() / n_observed
    variability = np.sqrt(table.column("p_var").to_numpy())
    correctness = n_correct / n_observed
    too_few = n_observed < required_observations(min_observed, n_epochs)
    for values in (confidence, variability, correctness):
        values[too_few] = np.nan
    member = _members(table.column("member"), bool((n_observed == n_epochs).all()), files)
    frame = pd.DataFrame(
        {
            "example_id": table.column("example_id").to_numpy().astype(np.int64),
            "member": member,
            "confidence": confidence,
            "variability": variability,
            "correctness": correctness,
            "forgetting_events": forgetting,
            "first_learned_epoch": first,
            "n_correct": n_correct,
            "last_correct": last,
            "n_observed": n_observed,
        },
        copy=False,
    )
    frame.attrs |= {"epochs": n_epochs, "chunks": len(ranges)}
    return frame


def _members(column: pa.ChunkedArray, dense: bool, files: Sequence[TraceFile]) -> pd.Categorical:
    encoded = pc.dictionary_encode(column.combine_chunks())
    names = [str(v) for v in encoded.dictionary.to_pylist()]
    values = pd.Categorical.from_codes(encoded.indices.to_numpy(zero_copy_only=False), names)
    if dense:  # as TraceMatrix: the last epoch file's dictionary
        last = max(f.epoch for f in files)
        return values.set_categories(_file_categories([f.path for f in files if f.epoch == last]))
    return values.set_categories(sorted(names))


def soi_from_files(
    con,
    files: Sequence[TraceFile],
    taxonomy: str | Taxonomy = "default",
    split_epoch: int | None = None,
    min_observed: int = MIN_OBSERVED,
    examples: pd.DataFrame | None = None,
    max_groups: int = 10**7,
) -> pd.DataFrame:
    """``from_traces.soi_from_matrix`` of one run's trace files, on DuckDB: per example its
    subset and cartography; ``examples`` adds the examples never traced."""
    frame = run_dynamics(con, files, min_observed, max_groups)
    chunks = frame.attrs.pop("chunks")
    out = soi_from_dynamics(
        frame, frame.attrs.pop("epochs"), taxonomy, split_epoch, min_observed, examples
    )
    out.attrs["chunks"] = chunks
    return out
