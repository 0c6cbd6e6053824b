"""The trace file format, schema v3 (docs/design.md): one Parquet file per split and epoch.

Rows are sorted by ``example_id``. Encodings are chosen for size: index-derived ids are
nearly consecutive, so ``example_id`` is delta-encoded to about a bit per row; ``member``,
``task``, ``gold`` and ``pred`` are dictionary/RLE-encoded; the float columns use
byte-stream-split before zstd, and are rounded to 12 mantissa bits (relative error at most
1.2e-4, far below the epoch-to-epoch noise the analyses measure), which lets zstd drop the
low bytes. ``loss`` is stored only where it is not ``-log p_gold`` (a ``p_gold`` that
rounds to 0): elsewhere it is null, the ``soi.loss`` metadata says ``derived``, and
readers put ``-log p_gold`` there (:func:`read_trace`, ``COALESCE`` in DuckDB), so every
reader sees the column as before. A column that holds one value in every row (the
``epoch`` always, the ``step`` of an evaluation pass) is not stored (v3): the
``soi.constant`` metadata gives its value and readers put the column back
(:func:`restore_columns`; the ``step`` from the file table in DuckDB), and a ``loss``
derived in every row is not stored at all. Columns with no
null are stored as required, and the dictionary-packed ones uncompressed. Schemas v1
(every ``loss`` stored) and v2 (every column stored) are read as they were.
File metadata (the footer's key-value pairs; v2 stores no Arrow schema, which repeated
them, so readers open ``member`` and ``task`` as dictionaries: :func:`open_trace`)
carries the schema version, the capture mode, the run id, the split, the epoch, the axis
and the label names per task. Readers check the version. Nothing is
pickled.

A difference docs/design.md lists: the member is one ``member`` column whatever the axis (its
axis is in the metadata), not a ``task``/``source``/``lang`` column per axis, so every
reader finds members under one name; ``task`` is kept, since heads follow tasks.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from soi_mlflow.errors import SoiInputError

SCHEMA_VERSION = 3
# v1: loss stored in every row; v2: loss derived; v3: constant columns kept in the metadata
READ_VERSIONS = ("1", "2", "3")
LOSS_DERIVED = "derived"  # soi.loss: null losses are -log p_gold
# read as dictionaries: v2 files keep no Arrow schema (~1 KB of footer), so say which
DICTIONARY = ["member", "task"]
META_PREFIX = "soi."
CAPTURE_MODES = ("train_pass", "eval_pass")

SCHEMA = pa.schema(
    [
        ("example_id", pa.int64()),
        ("epoch", pa.int32()),
        ("step", pa.int64()),
        ("member", pa.dictionary(pa.int32(), pa.string())),
        ("task", pa.dictionary(pa.int32(), pa.string())),
        ("gold", pa.int32()),
        ("pred", pa.int32()),
        ("p_gold", pa.float32()),
        ("loss", pa.float32()),
    ]
)
REQUIRED = tuple(SCHEMA.names)
# Optional columns (docs/design.md): ``margin`` = gold logit minus the largest other logit (AUM's
# margin; equal to the same difference of log-probabilities), kept to 8 mantissa bits
# (relative error at most 2^-9, ~1.8 bytes per row). Readers accept files with or without.
OPTIONAL = pa.schema([("margin", pa.float32())])
OPTIONAL_MANTISSA_BITS = {"margin": 8}
FLOAT_MANTISSA_BITS = 12
PARQUET_MAGIC = b"PAR1"
# bit-packed by their dictionary: zstd only adds its frame (~0.02 bytes a row in a small
# evaluation file each, bench/trace_bytes.py), so these are stored uncompressed
BIT_PACKED = ("member", "task", "gold", "pred")
ENCODINGS = {
    "example_id": "DELTA_BINARY_PACKED",
    "epoch": "DELTA_BINARY_PACKED",
    "step": "DELTA_BINARY_PACKED",
    "p_gold": "BYTE_STREAM_SPLIT",
    "loss": "BYTE_STREAM_SPLIT",
    "margin": "BYTE_STREAM_SPLIT",
}
FOOTER_GUESS = 16 * 1024  # a trace file's footer is ~1 KB
# A column whose every row holds one value (the epoch always; the step of an evaluation
# pass) is stored once, in the ``soi.constant`` metadata, not as a column: a column costs
# ~120 bytes of a file (page, footer entry), 0.2-0.3 bytes a row of an evaluation file
CONSTANT_META = "constant"
MAY_BE_CONSTANT = ("epoch", "step")


def round_mantissa(values: np.ndarray, bits: int = FLOAT_MANTISSA_BITS) -> np.ndarray:
    """Round float32 ``values`` to ``bits`` mantissa bits (round half up on the bit pattern)."""
    x = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    drop = 23 - bits
    rounded = (x + np.uint32(1 << (drop - 1))) & np.uint32((0xFFFFFFFF >> drop) << drop)
    finite = np.isfinite(values)
    return np.where(finite, rounded.view(np.float32), values).astype(np.float32)


class TraceFormatError(SoiInputError):
    """A trace file this version cannot read: unreadable or truncated, of an unknown schema
    version, or missing columns. ``path`` is the file, ``problem`` what is wrong with it
    (readers of a run's traces re-raise it naming the run and the artifact)."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"trace file {self.path!r} {problem}")


@contextmanager
def readable(path: str | Path) -> Iterator[None]:
    """Turn pyarrow's and the OS's errors while reading ``path`` into a TraceFormatError."""
    try:
        yield
    except TraceFormatError:
        raise
    except (pa.ArrowException, OSError) as exc:
        lines = str(exc).strip().splitlines()
        raise TraceFormatError(
            path,
            f"cannot be read ({lines[0][:200] if lines else type(exc).__name__}): it may be "
            "truncated (an upload or a copy cut short) or not a trace file at all",
        ) from None


def build_table(
    columns: dict[str, np.ndarray], member_names: list[str], task_names: list[str]
) -> pa.Table:
    """A trace table from per-row arrays; ``member_idx``/``task_idx`` index the names."""
    order = np.argsort(columns["example_id"], kind="stable")

    def dictionary(idx_key: str, names: list[str]) -> pa.DictionaryArray:
        idx = pa.array(np.asarray(columns[idx_key])[order].astype(np.int32))
        return pa.DictionaryArray.from_arrays(idx, pa.array(names, pa.string()))

    n = len(order)
    arrays = [
        pa.array(np.asarray(columns["example_id"], dtype=np.int64)[order]),
        pa.array(np.broadcast_to(np.asarray(columns["epoch"], dtype=np.int32), (n,))[order]),
        pa.array(np.asarray(columns["step"], dtype=np.int64)[order]),
        dictionary("member_idx", member_names),
        dictionary("task_idx", task_names),
        pa.array(np.asarray(columns["gold"], dtype=np.int32)[order]),
        pa.array(np.asarray(columns["pred"], dtype=np.int32)[order]),
        pa.array(p_gold := np.minimum(round_mantissa(np.asarray(columns["p_gold"])[order]), 1.0)),
        stored_loss(np.asarray(columns["loss"])[order], p_gold),
    ]
    schema = SCHEMA
    for extra in OPTIONAL:
        if extra.name in columns:
            values = np.asarray(columns[extra.name])[order]
            arrays.append(pa.array(round_mantissa(values, OPTIONAL_MANTISSA_BITS[extra.name])))
            schema = schema.append(extra)
    return pa.Table.from_arrays(arrays, schema=schema)


def stored_loss(loss: np.ndarray, p_gold: np.ndarray) -> pa.Array:
    """The ``loss`` column: null where ``-log p_gold`` gives it (readers derive it there),
    the loss itself (rounded like ``p_gold``) where ``p_gold`` rounds to 0."""
    keep = ~(p_gold > 0)
    return pa.array(round_mantissa(loss), mask=~keep)


def derive_loss(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame``'s null losses filled with ``-log p_gold`` (float32), in place: as precise
    as the stored ``p_gold`` (12 mantissa bits), within 1.3e-4 near ``p_gold`` = 1."""
    missing = frame["loss"].isna().to_numpy()
    if missing.any():
        with np.errstate(divide="ignore"):  # in float64, as DuckDB's ln, then float32
            derived = -np.log(frame["p_gold"].to_numpy(np.float64))
        frame["loss"] = np.where(missing, derived, frame["loss"].to_numpy()).astype(np.float32)
    return frame


def write_trace(path: str | Path, table: pa.Table, meta: dict[str, Any]) -> Path:
    """Write ``table`` with ``meta`` (values JSON-encoded unless strings) as file metadata:
    the footer's key-value pairs, with no Arrow schema (which would repeat them and the
    column types, about 1 KB: a quarter of a small evaluation file)."""
    table, constants = without_derivable(table.replace_schema_metadata(None))
    metadata = {
        f"{META_PREFIX}trace_schema": str(SCHEMA_VERSION),
        f"{META_PREFIX}loss": LOSS_DERIVED,
    }
    if constants:
        metadata[f"{META_PREFIX}{CONSTANT_META}"] = json.dumps(constants, separators=(",", ":"))
    for key, value in meta.items():
        metadata[f"{META_PREFIX}{key}"] = value if isinstance(value, str) else json.dumps(value)
    table = required_where_full(table)
    zstd = [name for name in table.column_names if name not in BIT_PACKED]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(
        path,
        table.schema,
        compression={name: "zstd" if name in zstd else "none" for name in table.column_names},
        compression_level={name: 9 for name in zstd},
        use_dictionary=list(BIT_PACKED),
        column_encoding={k: v for k, v in ENCODINGS.items() if k in table.column_names},
        write_statistics=False,
        data_page_version="2.0",
        store_schema=False,
    ) as writer:
        writer.write_table(table)
        writer.add_key_value_metadata(metadata)
    return path


def without_derivable(table: pa.Table) -> tuple[pa.Table, dict[str, int]]:
    """``table`` without the :data:`MAY_BE_CONSTANT` columns that hold one value in every
    row, and those values; without ``loss`` where every row's is derived (null). An empty
    table keeps its columns."""
    constants: dict[str, int] = {}
    for name in MAY_BE_CONSTANT:
        if table.num_rows == 0 or name not in table.column_names:
            continue
        column = table.column(name)
        values = column.to_numpy()
        if column.null_count == 0 and values.min() == values.max():
            constants[name] = int(values[0])
    dropped = list(constants)
    if "loss" in table.column_names and 0 < table.num_rows == table.column("loss").null_count:
        dropped.append("loss")  # derived in every row: readers derive the whole column
    return table.drop_columns(dropped), constants


def constants_of(path: str | Path, meta: dict[str, Any]) -> dict[str, int]:
    """The columns a v3 file keeps in its ``soi.constant`` metadata (``meta``: as
    :func:`check_metadata` gives it), checked: ``{}`` for older files."""
    constants = meta.get(CONSTANT_META) or {}
    if not isinstance(constants, dict) or not all(
        name in MAY_BE_CONSTANT and isinstance(value, int) and not isinstance(value, bool)
        for name, value in constants.items()
    ):
        raise TraceFormatError(
            path,
            f"has soi.{CONSTANT_META} = {json.dumps(constants)[:200]}; expected a JSON object "
            f"of integers for {', '.join(MAY_BE_CONSTANT)}",
        )
    return constants


def file_constants(path: str | Path, footer: pq.FileMetaData) -> dict[str, int]:
    """:func:`constants_of` from a file's footer, read before."""
    raw = (footer.metadata or {}).get(f"{META_PREFIX}{CONSTANT_META}".encode())
    try:
        return constants_of(path, {CONSTANT_META: json.loads(raw)} if raw else {})
    except json.JSONDecodeError:
        raise TraceFormatError(path, f"has soi.{CONSTANT_META} that is not JSON") from None


def restore_columns(path: str | Path, table: pa.Table, meta: dict[str, Any]) -> pa.Table:
    """``table`` with the columns a v3 file leaves out put back, in the schema's order, so
    every reader sees the columns of a v2 file: those its ``soi.constant`` metadata gives,
    and ``loss`` as nulls where none was stored (:func:`derive_loss` then fills it)."""
    missing = dict(constants_of(path, meta))
    if "loss" not in table.column_names:
        missing["loss"] = None
    for name, value in missing.items():
        if name in table.column_names:
            continue
        field = SCHEMA.field(name)
        before = SCHEMA.names[: SCHEMA.get_field_index(name)]
        position = sum(1 for n in table.column_names if n in before)
        if value is None:
            column = pa.nulls(table.num_rows, field.type)
        else:
            column, field = (
                pa.array(np.full(table.num_rows, value), field.type),
                field.with_nullable(False),
            )
        table = table.add_column(position, field, column)
    return table


def required_where_full(table: pa.Table) -> pa.Table:
    """``table`` with every column that has no null marked required (not nullable): a
    required column stores no definition levels (0.2 bytes a row in a small evaluation
    file). ``loss``, null where derived, stays optional; readers see the same values."""
    fields = [
        f.with_nullable(f.name == "loss" or table.column(f.name).null_count > 0)
        for f in table.schema
    ]
    return table.cast(pa.schema(fields))


@contextmanager
def open_trace(
    path: str | Path, filesystem: Any = None, metadata: Any = None
) -> Iterator[pq.ParquetFile]:
    """``path`` opened as a Parquet file, on ``filesystem`` (a ``pyarrow.fs.FileSystem``;
    None: a local path). Reads go through :func:`readable`; ``metadata`` (a file's
    ``FileMetaData`` read before) spares reading its footer again."""
    with readable(path):
        if filesystem is None:
            footer = metadata or pq.read_metadata(path)
            with pq.ParquetFile(path, metadata=footer, read_dictionary=_names(footer)) as pf:
                yield pf
            return
        with filesystem.open_input_file(str(path)) as f:
            footer = metadata or read_footer(f)
            yield pq.ParquetFile(f, metadata=footer, read_dictionary=_names(footer))


def _names(footer: pq.FileMetaData) -> list[str]:
    """The columns of :data:`DICTIONARY` a file has (a user's file may lack ``task``)."""
    return [c for c in DICTIONARY if c in footer.schema.names]


def read_footer(f: pa.NativeFile) -> pq.FileMetaData:
    """An open Parquet file's metadata from one read of its last ``FOOTER_GUESS`` bytes
    (a second read only for a larger footer) rather than pyarrow's 64 KiB guess, which
    is most of a small file fetched over the network (DDP shards, small splits)."""
    size = f.size()
    tail = f.read_at(min(size, FOOTER_GUESS), size - min(size, FOOTER_GUESS))
    if len(tail) < 12 or tail[-4:] != PARQUET_MAGIC:
        raise pa.ArrowInvalid("no Parquet footer at the end of the file")
    need = int.from_bytes(tail[-8:-4], "little") + 12  # footer, its length, two magics
    if need > size:
        raise pa.ArrowInvalid("the Parquet footer is longer than the file")
    if need > len(tail):
        tail = f.read_at(need, size - need)
    return pq.read_metadata(pa.BufferReader(tail))


def check_metadata(path: str | Path, source: pa.Schema | pq.ParquetFile) -> dict[str, Any]:
    """The ``soi.*`` metadata of a trace file, after checking its version: from the open
    file (``source``: a ``ParquetFile``; v2 keeps it in the footer's key-value metadata
    only) or from an Arrow schema (v1 files also keep it there)."""
    if isinstance(source, pq.ParquetFile):
        raw = {**(source.schema_arrow.metadata or {}), **(source.metadata.metadata or {})}
    else:
        raw = source.metadata or {}
    meta = {k.decode(): v.decode() for k, v in raw.items() if k.decode().startswith(META_PREFIX)}
    version = meta.get(f"{META_PREFIX}trace_schema")
    if version is None:
        raise TraceFormatError(path, "has no trace schema version: not a soi-mlflow trace file")
    if version not in READ_VERSIONS:
        raise TraceFormatError(
            path,
            f"has trace schema version {version!r}; this soi-mlflow reads versions "
            f"{', '.join(READ_VERSIONS)} (upgrade soi-mlflow to read newer traces)",
        )
    out: dict[str, Any] = {}
    for key, value in meta.items():
        name = key[len(META_PREFIX) :]
        try:
            out[name] = json.loads(value)
        except json.JSONDecodeError:
            out[name] = value
    return out


def read_metadata(path: str | Path, filesystem: Any = None) -> dict[str, Any]:
    """The ``soi.*`` metadata of a trace file, after checking its schema version
    (``filesystem``: as for :func:`open_trace`)."""
    with open_trace(path, filesystem) as pf:
        return check_metadata(path, pf)


def read_trace(path: str | Path, filesystem: Any = None) -> pd.DataFrame:
    """A trace file (schema v1 or v2) as a DataFrame with the trace columns (categoricals
    for names), ``loss`` derived where the file leaves it null; ``filesystem``: as for
    :func:`open_trace`."""
    with open_trace(path, filesystem) as pf:
        table = restore_columns(path, pf.read(), check_metadata(path, pf))
    missing = [c for c in REQUIRED if c not in table.column_names]
    if missing:
        raise TraceFormatError(path, f"lacks column(s) {', '.join(missing)}")
    return derive_loss(table.to_pandas())
