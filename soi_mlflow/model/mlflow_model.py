"""Trained models as MLflow Models: logged, registered, and read back for stage 2.

A run's model (``runs:/<run_id>/model``) is a pyfunc model logged "from code"
(``model/pyfunc_model.py``) with the run's checkpoint folder (``model/checkpoint.py``:
safetensors and JSON) as its one artifact. MLflow loads such a model by running the code
file and the code reads safetensors, so nothing is unpickled (a pyfunc model logged as a
Python object would be a cloudpickle file). The ``transformers`` flavour cannot hold
several task heads, and the ``pytorch`` flavour pickles the whole module.

``init_from`` (stage 2) takes a checkpoint folder or any model URI MLflow resolves:
``models:/NAME/VERSION``, ``models:/NAME@ALIAS``, ``runs:/RUN_ID/model``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from soi_mlflow.analysis.store import quiet_downloads
from soi_mlflow.errors import SoiInputError

MODEL_NAME = "model"  # runs:/<run_id>/model
CHECKPOINT_ARTIFACT = "checkpoint"
CODE_FILE = Path(__file__).with_name("pyfunc_model.py")
if TYPE_CHECKING:
    import pandas as pd

URI_SCHEMES = ("models:/", "runs:/")
REQUIREMENTS = ("mlflow", "torch", "transformers", "safetensors", "pandas")


def is_model_uri(value: str | None) -> bool:
    return bool(value) and str(value).startswith(URI_SCHEMES)


def check_model_uri(uri: str) -> None:
    """Refuse a model URI MLflow could not resolve, before any work (no network)."""
    body = uri.split(":/", 1)[1]
    parts = [p for p in body.split("/") if p]
    if uri.startswith("runs:/") and len(parts) < 2:
        raise SoiInputError(f"init-from: expected runs:/RUN_ID/model, got {uri!r}")
    if uri.startswith("models:/") and not parts:
        raise SoiInputError(
            f"init-from: expected models:/NAME/VERSION or models:/NAME@ALIAS, got {uri!r}"
        )


def check_registered_name(name: str) -> None:
    """MLflow's rules for a registered model name, checked before training."""
    if not isinstance(name, str) or not name.strip():
        raise SoiInputError("register-as: the registered model name is empty")
    if "/" in name or ":" in name or name in (".", ".."):
        raise SoiInputError(
            f"register-as: {name!r} is not a valid registered model name (no '/' or ':')"
        )


@contextmanager
def using_tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's model functions read the global tracking URI; set it for this block only."""
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    with _use_tracking_uri(uri):
        yield


def signature() -> Any:
    """Input: text, optional text_pair and task; output: task, pred, label, logits, probs."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, Schema

    inputs = Schema(
        [
            ColSpec("string", "text"),
            ColSpec("string", "text_pair", required=False),
            ColSpec("string", "task", required=False),
        ]
    )
    outputs = Schema(
        [
            ColSpec("string", "task"),
            ColSpec("long", "pred"),
            ColSpec("string", "label"),
            ColSpec(Array("double"), "logits"),
            ColSpec(Array("double"), "probs"),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def input_example(examples: pd.DataFrame, rows: int = 2) -> pd.DataFrame:
    """The first ``rows`` examples of a split, as the model takes them."""
    import pandas as pd

    head = examples.head(rows)
    frame = pd.DataFrame({"text": head["text"].astype(str)})
    if "text_pair" in head.columns and head["text_pair"].notna().all():
        frame["text_pair"] = head["text_pair"].astype(str)
    if "task" in head.columns:
        frame["task"] = head["task"].astype(str)
    return frame.reset_index(drop=True)


def requirements() -> list[str]:
    """Pinned versions of what the code file imports (no pip inference: it costs seconds)."""
    import mlflow
    import pandas as pd
    import safetensors
    import torch
    import transformers

    modules = (mlflow, torch, transformers, safetensors, pd)
    return [
        f"{name}=={m.__version__.split('+')[0]}"
        for name, m in zip(REQUIREMENTS, modules, strict=True)
    ]


def log_model(
    tracking_uri: str,
    run_id: str,
    checkpoint: Path,
    example: pd.DataFrame,
    register_as: str | None = None,
    step: int = 0,
) -> Any:
    """Log ``checkpoint`` as the run's MLflow Model; register it as ``register_as`` if given.
    ``step`` (the last epoch) picks the run's metrics MLflow links to the model.

    Returns MLflow's ``ModelInfo`` (``registered_model_version`` set when registered)."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import Model

    client = MlflowClient(tracking_uri)
    run = client.get_run(run_id)
    # created here, in the run's experiment: with a run id but no active run, MLflow 3.17
    # would put the logged model in the active (default) experiment, where runs:/ URIs
    # and registration do not find it
    logged = client.create_logged_model(
        run.info.experiment_id, MODEL_NAME, run_id, params=dict(run.data.params)
    )
    with using_tracking_uri(tracking_uri), quiet_downloads():
        # Model.log is what mlflow.pyfunc.log_model calls; it takes the run id (no active run)
        info = Model.log(
            artifact_path=None,
            name=MODEL_NAME,
            model_id=logged.model_id,
            flavor=mlflow.pyfunc,
            flavor_name="pyfunc.ModelFromCode",
            python_model=str(CODE_FILE),
            artifacts={CHECKPOINT_ARTIFACT: str(checkpoint)},
            signature=signature(),
            input_example=example,
            pip_requirements=requirements(),
            run_id=run_id,
            registered_model_name=register_as,
            step=step,
        )
    return info


@contextmanager
def model_checkpoint(uri: str, tracking_uri: str) -> Iterator[Path]:
    """A local copy of a model's checkpoint folder (removed after the block)."""
    import mlflow

    with tempfile.TemporaryDirectory(prefix="soi-model-") as tmp:
        with using_tracking_uri(tracking_uri), quiet_downloads():
            try:
                local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp))
            except Exception as exc:
                raise SoiInputError(f"init-from: cannot load model {uri!r}: {exc}") from None
        folder = local / "artifacts" / CHECKPOINT_ARTIFACT
        if not (folder / "tasks.json").is_file():
            raise SoiInputError(
                f"init-from: {uri!r} is not a soi-mlflow model (no {CHECKPOINT_ARTIFACT} "
                "artifact with tasks.json)"
            )
        yield folder


def model_run_id(uri: str, tracking_uri: str) -> str:
    """The run a model was logged from (reads only the model's MLmodel file)."""
    import mlflow

    with using_tracking_uri(tracking_uri):
        try:
            info = mlflow.models.get_model_info(uri)
        except Exception as exc:
            raise SoiInputError(f"cannot find model {uri!r} in {tracking_uri}: {exc}") from None
    if not info.run_id:
        raise SoiInputError(f"model {uri!r} was not logged from a run; stage 2 needs its traces")
    return info.run_id
