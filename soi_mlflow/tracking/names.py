"""Naming rules of the trace recorder: split names, their metric prefixes, the default
task, and where an epoch's trace file goes in the run."""

from __future__ import annotations

import re
from typing import Any

from soi_mlflow.errors import SoiInputError

SPLIT_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
METRIC_PREFIX = {"train": "train", "validation": "val", "test": "test", "ood": "ood"}
DEFAULT_TASK = "default"


def trace_artifact_path(split: str) -> str:
    return f"traces/{split}"


def trace_file_name(epoch: int) -> str:
    return f"epoch={epoch:03d}.parquet"


def check_split_name(split: Any) -> str:
    """A split name becomes a folder and a metric prefix: letters, digits, ``_ . -`` only."""
    if not isinstance(split, str) or not SPLIT_NAME.match(split) or split in (".", ".."):
        raise SoiInputError(
            f"split name {split!r}: expected 1-64 letters, digits, '_', '.' or '-' "
            "(it names the folder traces/<split>/ and the metrics of that split)"
        )
    return split
