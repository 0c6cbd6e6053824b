"""This machine's per-run folder: resume checkpoints and the upload spool of a run.

``$SOI_MLFLOW_CACHE/runs/<run_id>/`` (default ``~/.cache/soi_mlflow/runs/<run_id>/``)::

    checkpoint/last.ckpt   the newest resume checkpoint (Lightning's format, tensors only)
    spool/                 files and metrics not yet in the tracking store (tracking/spool.py)

Run ids are UUIDs, so one folder per run id is unique across tracking stores.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from soi_mlflow.errors import SoiInputError

RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def soi_home() -> Path:
    root = os.environ.get("SOI_MLFLOW_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "soi_mlflow"


def run_folder(run_id: str) -> Path:
    """``<home>/runs/<run_id>`` (not created); the id is checked before it names a folder."""
    if not isinstance(run_id, str) or not RUN_ID.match(run_id):
        raise SoiInputError(f"run id {run_id!r}: expected letters, digits, '_' or '-' only")
    return soi_home() / "runs" / run_id


def checkpoint_path(run_id: str) -> Path:
    return run_folder(run_id) / "checkpoint" / "last.ckpt"
