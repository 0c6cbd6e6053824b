"""Many runs' traces as one DuckDB relation, for users' own SQL.

The files are listed explicitly (MLflow's artifact paths are not hive-partitioned) and
read by one ``read_parquet`` over the list; each row's file position (a small integer)
is joined to a small table of (file, run id, epoch), so no path or run id is ever pasted
into SQL and no string is compared per row. Columns: ``run_id``, ``epoch`` (from the
file's path) and the trace columns (``example_id, step, member, task, gold, pred,
p_gold, loss``, and ``margin`` where a run has it, NULL elsewhere); ``loss`` is derived
from ``p_gold`` where a file leaves it null (``tracking/trace_format.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from soi_mlflow.analysis.duck.files import TraceFile, file_rows
from soi_mlflow.analysis.duck.limits import Limits, open_connection
from soi_mlflow.analysis.experiment import runs_with_traces
from soi_mlflow.analysis.runs import trace_paths
from soi_mlflow.errors import SoiInputError
from soi_mlflow.tracking.health import check_run_id
from soi_mlflow.tracking.trace_format import MAY_BE_CONSTANT, OPTIONAL, SCHEMA, file_constants

# the columns a v3 file may keep in its metadata, but the epoch, which the path gives
FROM_METADATA = tuple(c for c in MAY_BE_CONSTANT if c != "epoch")


def trace_relation(files: Sequence[TraceFile], con=None, limits: Limits | None = None):
    """A relation over ``files`` on ``con`` (default: a new connection under ``limits``,
    whose spill folder goes when the connection does)."""
    if not files:
        raise SoiInputError("traces: no trace files to read")
    con = con if con is not None else open_connection(limits)
    name = f"soi_trace_files_{uuid.uuid4().hex}"  # ours, never user text
    footers = [pq.read_metadata(f.path) for f in files]
    constants = [file_constants(f.path, footer) for f, footer in zip(files, footers, strict=True)]
    columns = {
        "file_index": pa.array(range(len(files)), pa.int64()),
        "run_id": pa.array([f.run_id for f in files], pa.string()),
        "epoch": pa.array([f.epoch for f in files], pa.int32()),  # from the path
    }
    for column in FROM_METADATA:  # a v3 file's constant columns, null where stored
        values = [c.get(column) for c in constants]
        columns[column] = pa.array(values, SCHEMA.field(column).type)
    con.register(name, pa.table(columns))
    return con.sql(
        f"SELECT {', '.join(_columns(footers))} "
        f"FROM read_parquet($files, union_by_name = true) t "
        f"JOIN {name} f ON t.file_index = f.file_index",
        params={"files": [f.path for f in files]},
    )


def _columns(footers: Sequence[pq.FileMetaData]) -> list[str]:
    """The select list: run id and epoch from the file table, the trace columns in the
    schema's order (a v3 file's constant columns from the file table, a null loss
    derived), then any other column the files have."""
    names = list(dict.fromkeys(n for footer in footers for n in footer.schema.names))
    always = {*FROM_METADATA, "loss"}
    order = [n for n in (*SCHEMA.names, *OPTIONAL.names) if n in names or n in always]
    out = ["f.run_id", "f.epoch"]
    # a null loss (schema v2) is -log p_gold; p_gold is never 0 there (the loss is stored);
    # files with no loss column at all (v3 where every loss is derived, and
    # bench/analysis_scale.py's) get it derived as well
    derived = "-ln(greatest(t.p_gold, 1e-45))"
    for column in [*order, *(n for n in names if n not in order)]:
        if column == "epoch":
            continue
        if column in FROM_METADATA:
            stored = f"COALESCE(t.{column}, f.{column})" if column in names else f"f.{column}"
            out.append(f"{stored} AS {column}")
        elif column == "loss":
            loss = f"COALESCE(t.loss, {derived})" if "loss" in names else derived
            out.append(f"{loss}::FLOAT AS loss")
        else:
            out.append("t." + '"' + column.replace('"', '""') + '"')  # names from files
    return out


def traces(
    run_ids: str | Sequence[str] | None = None,
    split: str = "train",
    tracking_uri: str | None = None,
    *,
    experiment: str | None = None,
    connection=None,
    limits: Limits | None = None,
):
    """The traces of ``split`` of several runs (``run_ids``, or every run of
    ``experiment`` that has them) as one DuckDB relation: ``run_id, epoch`` and the trace
    columns. Query it with SQL (``rel.aggregate(...)``, ``con.sql("... FROM rel")``) or
    fetch it (``rel.df()``, ``rel.to_arrow_table()``).

    ``connection``: a DuckDB connection of yours; by default a new one with a quarter of
    this machine's memory (``limits``) and a spill folder removed with it. The files are
    read in place from a local artifact store, else from the artifact cache's copies."""
    if (run_ids is None) == (experiment is None):
        raise SoiInputError("traces: give run_ids or experiment=NAME (one of them)")
    if experiment is not None:
        ids = [run.run_id for run in runs_with_traces(experiment, (split,), tracking_uri)]
        if not ids:
            raise SoiInputError(f"experiment {experiment!r}: no run has traces of {split!r}")
    else:
        given = [run_ids] if isinstance(run_ids, str) else list(run_ids or [])
        if not given:
            raise SoiInputError("traces: run_ids is empty; expected at least one run id")
        ids = [check_run_id(r, "run_ids:") for r in given]
    source = {r: trace_paths(r, split, tracking_uri) for r in dict.fromkeys(ids)}
    return trace_relation(file_rows(source), connection, limits)
