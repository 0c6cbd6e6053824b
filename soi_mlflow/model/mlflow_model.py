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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from soi_mlflow.errors import SoiInputError, first_line
from soi_mlflow.model.adapters import ADAPTER
from soi_mlflow.tracking.artifacts import quiet_downloads
from soi_mlflow.tracking.search import quote_value
from soi_mlflow.tracking.store import client_for

MODEL_NAME = "model"  # runs:/<run_id>/model
CHECKPOINT_ARTIFACT = "checkpoint"
CODE_FILE = Path(__file__).with_name("pyfunc_model.py")
if TYPE_CHECKING:
    import pandas as pd

URI_SCHEMES = ("models:/", "runs:/")
FLAVOR = "pyfunc.ModelFromCode"
REQUIREMENTS = ("mlflow", "torch", "transformers", "safetensors", "pandas")


@dataclass(frozen=True)
class LoggedModelInfo:
    """Where a logged model is: ``model_uri`` (``models:/m-...``), and the version it was
    registered as, if it was."""

    model_uri: str
    model_id: str
    run_id: str
    registered_model_version: str | None = None


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


def registry_uri_for(tracking_uri: str) -> str:
    """The model registry that goes with ``tracking_uri``: the one the user set
    (``MLFLOW_REGISTRY_URI`` or ``mlflow.set_registry_uri``), else the tracking store itself.

    Read through MLflow's public getters only; nothing global is set."""
    import mlflow

    registry = mlflow.get_registry_uri()
    return tracking_uri if registry == mlflow.get_tracking_uri() else registry


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


def requirements(adapted: bool = False) -> list[str]:
    """Pinned versions of what the code file imports (no pip inference: it costs seconds);
    peft too for a model with an adapter."""
    import mlflow
    import pandas as pd
    import safetensors
    import torch
    import transformers

    modules = (mlflow, torch, transformers, safetensors, pd)
    pins = [
        f"{name}=={m.__version__.split('+')[0]}"
        for name, m in zip(REQUIREMENTS, modules, strict=True)
    ]
    if adapted:
        import peft

        pins.append(f"peft=={peft.__version__}")
    return pins


def _backbone(checkpoint: Path) -> dict[str, Any]:
    """The model's metadata (MLmodel): its pooling and, for an adapter, the backbone."""
    import json

    meta = json.loads((Path(checkpoint) / "tasks.json").read_text())
    return {k: meta[k] for k in ("pooling", "base_model") if meta.get(k) is not None}


def log_model(
    tracking_uri: str,
    run_id: str,
    checkpoint: Path,
    example: pd.DataFrame,
    register_as: str | None = None,
    step: int = 0,
) -> LoggedModelInfo:
    """Log ``checkpoint`` as the run's MLflow Model; register it as ``register_as`` if given.
    ``step`` (the last epoch) picks the run's metrics MLflow links to the model.

    Everything goes through the store's one ``MlflowClient``: the model is saved locally with
    ``mlflow.pyfunc.save_model`` and uploaded as a logged model of the run's experiment.
    ``mlflow.pyfunc.log_model``/``Model.log`` would read MLflow's global tracking URI, and
    setting that for a block unsets ``MLFLOW_TRACKING_URI`` on exit (STACK-NOTES)."""
    import mlflow
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus
    from mlflow.models import Model

    client = client_for(tracking_uri)  # the store's one client, the run's own
    run = client.get_run(run_id)
    logged = client.create_logged_model(
        run.info.experiment_id,
        MODEL_NAME,
        run_id,
        tags={"mlflow.modelFlavor": FLAVOR},  # what Model.log records, for MLflow's UI
        params={k: str(v) for k, v in run.data.params.items()},
    )
    try:
        client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=step)])
        _link_step_metrics(client, run, logged.model_id, step)
        with tempfile.TemporaryDirectory(prefix="soi-model-") as tmp, quiet_downloads():
            local = Path(tmp) / MODEL_NAME
            meta = Model(
                artifact_path=logged.artifact_location,
                model_uuid=logged.model_id,
                run_id=run_id,
                model_id=logged.model_id,
            )
            adapted = (Path(checkpoint) / ADAPTER).is_dir()
            mlflow.pyfunc.save_model(
                path=str(local),
                python_model=str(CODE_FILE),
                artifacts={CHECKPOINT_ARTIFACT: str(checkpoint)},
                signature=signature(),
                input_example=example,
                pip_requirements=requirements(adapted),
                mlflow_model=meta,
                metadata=_backbone(checkpoint),
            )
            client.log_model_artifacts(logged.model_id, str(local))
    except BaseException:
        client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
        raise
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    version = None
    if register_as is not None:
        version = register_model(
            tracking_uri, register_as, logged.model_id, logged.artifact_location, run_id
        )
    return LoggedModelInfo(f"models:/{logged.model_id}", logged.model_id, run_id, version)


def _link_step_metrics(client: Any, run: Any, model_id: str, step: int) -> None:
    """Link the run's metrics at ``step`` to the model, as ``Model.log`` does, so the
    model's page in the UI shows them."""
    from mlflow.entities import Metric

    run_id = run.info.run_id
    metrics = []
    for key in run.data.metrics:
        metrics += [
            Metric(m.key, m.value, m.timestamp, m.step, model_id=model_id, run_id=run_id)
            for m in client.get_metric_history(run_id, key)
            if m.step == step and m.model_id is None
        ]
    if metrics:
        client.log_batch(run_id, metrics=metrics)


def register_model(tracking_uri: str, name: str, model_id: str, location: str, run_id: str) -> str:
    """Register logged model ``model_id`` (stored at ``location``) under ``name`` (created
    if new); returns its version.

    The source is the model's storage location, which is what MLflow stores for a
    ``models:/m-...`` source: given that URI, MLflow 3.17's SQL registry looks the logged
    model up through the *global* tracking URI (a TODO in its ``create_model_version``),
    not this client's store."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    registry = MlflowClient(tracking_uri, registry_uri=registry_uri_for(tracking_uri))
    try:
        registry.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    version = registry.create_model_version(name, source=location, run_id=run_id, model_id=model_id)
    return str(version.version)


@dataclass(frozen=True)
class ModelLocation:
    """Where a model URI points: its files (an artifact URI) and the run that logged it."""

    artifact_uri: str
    run_id: str | None


def locate_model(uri: str, tracking_uri: str) -> ModelLocation:
    """Resolve ``runs:/ID/NAME``, ``models:/NAME/VERSION``, ``models:/NAME@ALIAS``,
    ``models:/NAME/latest`` or ``models:/m-...`` through ``MlflowClient`` (no download).

    MLflow's own ``models:/`` resolution (``ModelsArtifactRepository``) reads the global
    tracking and registry URIs whatever it is given, so it would look in the wrong store
    when the user's store is named only here or by ``MLFLOW_TRACKING_URI``."""
    from mlflow import MlflowClient

    check_model_uri(uri)
    client = MlflowClient(tracking_uri, registry_uri=registry_uri_for(tracking_uri))
    try:
        return _locate(client, uri)
    except SoiInputError:
        raise
    except Exception as exc:
        raise SoiInputError(
            f"cannot find model {uri!r} in {tracking_uri}: {first_line(exc)}"
        ) from None


def _locate(client: Any, uri: str) -> ModelLocation:
    body = uri.split(":/", 1)[1].strip("/")
    if uri.startswith("runs:/"):
        run_id, _, path = body.partition("/")
        run = client.get_run(run_id)  # raises when the run does not exist
        name, _, rest = path.partition("/")
        logged = _logged_model_of_run(client, run.info.experiment_id, run_id, name)
        if logged is None:  # a model logged as plain run artifacts
            return ModelLocation(f"{run.info.artifact_uri.rstrip('/')}/{path}", run_id)
        return ModelLocation(_join(logged.artifact_location, rest), run_id)
    name, _, rest = body.partition("/")
    if "@" in name and not rest:
        name, alias = name.split("@", 1)
        version = client.get_model_version_by_alias(name, alias)
    elif rest:
        number = rest.split("/", 1)[0]
        if number.lower() == "latest":
            operator, literal = quote_value(name)
            found = client.search_model_versions(f"name {operator} {literal}")
            versions = [v for v in found if v.name == name]  # LIKE may match more
            if not versions:
                raise SoiInputError(f"registered model {name!r} has no versions")
            version = max(versions, key=lambda v: int(v.version))
        else:
            version = client.get_model_version(name, number)
    else:  # models:/m-<id>: a logged model
        logged = client.get_logged_model(name)
        return ModelLocation(logged.artifact_location, logged.source_run_id)
    location = client.get_model_version_download_uri(version.name, version.version)
    return ModelLocation(location, version.run_id)


def _logged_model_of_run(client: Any, experiment_id: str, run_id: str, name: str) -> Any:
    """The newest logged model called ``name`` that ``run_id`` logged, or None."""
    operator, literal = quote_value(name)
    found = [
        m
        for m in client.search_logged_models(
            experiment_ids=[experiment_id], filter_string=f"name {operator} {literal}"
        )
        if m.source_run_id == run_id and m.name == name
    ]
    return max(found, key=lambda m: m.creation_timestamp, default=None)


def _join(base: str, rest: str) -> str:
    return f"{base.rstrip('/')}/{rest}" if rest else base


@contextmanager
def model_checkpoint(uri: str, tracking_uri: str) -> Iterator[Path]:
    """A local copy of a model's checkpoint folder (removed after the block)."""
    import mlflow

    where = locate_model(uri, tracking_uri)
    with tempfile.TemporaryDirectory(prefix="soi-model-") as tmp:
        with quiet_downloads():
            try:
                local = Path(
                    mlflow.artifacts.download_artifacts(
                        artifact_uri=_join(where.artifact_uri, f"artifacts/{CHECKPOINT_ARTIFACT}"),
                        dst_path=tmp,
                        tracking_uri=tracking_uri,
                    )
                )
            except Exception as exc:
                raise SoiInputError(
                    f"init-from: {uri!r} is not a soi-mlflow model (no {CHECKPOINT_ARTIFACT} "
                    f"artifact with tasks.json): {first_line(exc, 200)}"
                ) from None
        if not (local / "tasks.json").is_file():
            raise SoiInputError(
                f"init-from: {uri!r} is not a soi-mlflow model (no {CHECKPOINT_ARTIFACT} "
                "artifact with tasks.json)"
            )
        yield local


def model_run_id(uri: str, tracking_uri: str) -> str:
    """The run a model was logged from (asks the stores; downloads nothing)."""
    run_id = locate_model(uri, tracking_uri).run_id
    if not run_id:
        raise SoiInputError(f"model {uri!r} was not logged from a run; stage 2 needs its traces")
    return run_id
