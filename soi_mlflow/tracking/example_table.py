"""The example table a run logs per split (``examples/<split>.parquet``): what it must hold,
checked before anything is written."""

from __future__ import annotations

from typing import Any

from soi_mlflow.errors import SoiInputError


def example_frame(split: str, table: Any) -> Any:
    """``table`` (a pandas DataFrame or a ``datasets.Dataset``) as a DataFrame with a fresh
    index, once it holds an ``example_id`` column without repeats; else SoiInputError."""
    frame = table.to_pandas() if hasattr(table, "to_pandas") else table
    if "example_id" not in getattr(frame, "columns", ()):
        raise SoiInputError(
            f"example table of split {split!r}: expected an 'example_id' column, got "
            f"{list(getattr(frame, 'columns', []))}"
        )
    frame = frame.reset_index(drop=True)
    if frame["example_id"].duplicated().any():
        raise SoiInputError(f"example table of split {split!r}: example_id values repeat")
    return frame
