"""The tracking side checked before any data is loaded."""

from __future__ import annotations

import os
from pathlib import Path

from soi_mlflow.errors import SoiInputError
from soi_mlflow.model.mlflow_model import is_model_uri, model_run_id
from soi_mlflow.tracking.health import (
    check_tracking,
    get_run,
)
from soi_mlflow.tracking.local import checkpoint_path
from soi_mlflow.tracking.store import client_for, resolve_tracking_uri
from soi_mlflow.training.config import TrainConfig
from soi_mlflow.training.key import (
    resume_differences,
)


def preflight(config: TrainConfig) -> Path | None:
    """Check the tracking side before any data is loaded: the store answers and can be
    written, and the parent run, ``MLFLOW_RUN_ID`` and the run to resume exist. Fails in
    seconds with a message naming the URI (``tracking/health.py``). Returns the checkpoint
    to resume from, if resuming."""
    uri = resolve_tracking_uri(config.tracking_uri)
    check_tracking(uri)
    client = client_for(uri)
    if config.experiment is not None:
        found = client.get_experiment_by_name(config.experiment)
        if found is not None and found.lifecycle_stage == "deleted":
            raise SoiInputError(
                f"experiment {config.experiment!r} is deleted in {uri}; restore it or pick "
                "another name"
            )
    if is_model_uri(config.init_from):
        model_run_id(str(config.init_from), uri)  # the model exists: fail now, not after data
    if config.parent_run_id is not None:
        get_run(client, config.parent_run_id, uri, "parent run id")
    elif os.environ.get("MLFLOW_RUN_ID") and config.resume is None:
        get_run(client, os.environ["MLFLOW_RUN_ID"], uri, "MLFLOW_RUN_ID")
    if config.resume is None:
        return None
    run = get_run(client, config.resume, uri, "resume run id")
    if run.info.status == "FINISHED":
        raise SoiInputError(f"run {config.resume} already FINISHED; there is nothing to resume")
    ckpt = checkpoint_path(config.resume)
    if not ckpt.is_file():
        raise SoiInputError(
            f"run {config.resume}: no resume checkpoint at {ckpt} (checkpoints are kept on "
            "the machine that trained; set SOI_MLFLOW_CACHE to the same folder there)"
        )
    differ = resume_differences(config, run.data.params, run.data.tags)
    if differ:
        raise SoiInputError(
            f"run {config.resume} was trained with other settings; resume with the same "
            f"ones: {'; '.join(differ)}"
        )
    return ckpt
