"""This machine's per-run folder: resume checkpoints and the upload spool of a run.

``$SOI_MLFLOW_CACHE/runs/<run_id>/`` (default ``~/.cache/soi_mlflow/runs/<run_id>/``)::

    checkpoint/last.ckpt   the newest resume checkpoint (Lightning's format, tensors only)
    spool/                 files and metrics not yet in the tracking store (tracking/spool.py)

``$SOI_MLFLOW_CACHE/artifacts/`` holds the artifact cache (tracking/artifacts.py).
Run ids are UUIDs, so one folder per run id is unique across tracking stores.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from soi_mlflow.errors import SoiInputError
from soi_mlflow.tracking.health import check_run_id

FOLDER_NAME_MAX = 128  # longer run ids (MLflow allows 256 characters) are shortened


def soi_home() -> Path:
    """The root of everything soi-mlflow keeps on this machine: ``$SOI_MLFLOW_CACHE``,
    else ``~/.cache/soi_mlflow``."""
    root = os.environ.get("SOI_MLFLOW_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "soi_mlflow"


def run_folder_name(run_id: str) -> str:
    """``run_id`` as a folder name, once it passes MLflow's run-id rule
    (:func:`~soi_mlflow.tracking.health.check_run_id`: ASCII letters, digits, ``_``,
    ``-``, never ``.`` or ``..``); an id longer than :data:`FOLDER_NAME_MAX` characters
    keeps its start and gets a digest of the whole (file systems allow 255)."""
    if check_run_id(run_id) != run_id:  # nothing stripped here: the id must be exact
        raise SoiInputError(f"run id {run_id!r}: expected an MLflow run id, without spaces")
    if len(run_id) <= FOLDER_NAME_MAX:
        return run_id
    digest = hashlib.blake2b(run_id.encode(), digest_size=16).hexdigest()
    return f"{run_id[: FOLDER_NAME_MAX - 33]}-{digest}"


def run_folder(run_id: str) -> Path:
    """``<home>/runs/<run_id>`` (not created); the id is checked before it names a folder."""
    return soi_home() / "runs" / run_folder_name(run_id)


def checkpoint_path(run_id: str) -> Path:
    return run_folder(run_id) / "checkpoint" / "last.ckpt"
