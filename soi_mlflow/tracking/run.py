"""MLflow run conventions (docs/design.md): opening the run, tags, params, inputs, artifacts.

Everything goes through ``MlflowClient`` with an explicit run id (no fluent active run),
so it works the same against SQLite, an ``http://`` server and inside ``mlflow run``.
"""

from __future__ import annotations

import os
import re
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from soi_mlflow.errors import SoiInputError
from soi_mlflow.tracking.links import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG
from soi_mlflow.tracking.tags import PREFIX

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_EXPERIMENT = "soi-mlflow"
TAG_PREFIX = PREFIX  # tracking/tags.py


def resolve_tracking_uri(uri: str | None) -> str:
    """The flag, else ``MLFLOW_TRACKING_URI``, else a SQLite file in the working directory."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def soi_tags(**values: Any) -> dict[str, str]:
    """``soi.<name>`` tags; lists become sorted comma-separated strings, None is dropped."""
    out = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple, set)):
            value = ",".join(sorted(map(str, value)))
        out[f"{TAG_PREFIX}{key}"] = str(value)
    return out


@dataclass
class RunHandle:
    """An open MLflow run: the client, the run id, and whether this process created it
    (then it ends it, through :func:`soi_mlflow.tracking.run_end.end_run`)."""

    client: Any
    run_id: str
    experiment_id: str
    tracking_uri: str
    created: bool

    @classmethod
    def open(
        cls,
        tracking_uri: str | None,
        experiment: str | None,
        run_name: str | None,
        tags: Mapping[str, str],
        parent_run_id: str | None = None,
        experiment_id: str | None = None,
    ) -> RunHandle:
        """Attach to ``MLFLOW_RUN_ID`` (under ``mlflow run``) or create a new run.

        A child run (``parent_run_id`` given) is always a new run, in the parent's
        experiment unless ``experiment_id`` says otherwise."""
        from mlflow import MlflowClient

        from soi_mlflow.tracking.health import check_tracking, get_run

        uri = resolve_tracking_uri(tracking_uri)
        check_tracking(uri)  # seconds, not MLflow's minutes of retries, on a dead server
        client = MlflowClient(uri)
        all_tags = dict(tags)
        parent = get_run(client, parent_run_id, uri, "parent run id") if parent_run_id else None
        if parent is not None:
            all_tags["mlflow.parentRunId"] = parent.info.run_id
        env_run = os.environ.get("MLFLOW_RUN_ID") if not parent_run_id else None
        if env_run:
            run = get_run(client, env_run, uri, "MLFLOW_RUN_ID")
            handle = cls(client, env_run, run.info.experiment_id, uri, created=False)
            if run_name and not run.info.run_name:
                all_tags["mlflow.runName"] = run_name
            handle.set_tags(all_tags)
            return handle
        if experiment_id is None and parent is not None:
            experiment_id = parent.info.experiment_id
        if experiment_id is None:
            experiment_id = ensure_experiment(client, experiment or DEFAULT_EXPERIMENT)
        run = client.create_run(experiment_id, run_name=run_name, tags=all_tags)
        return cls(client, run.info.run_id, experiment_id, uri, created=True)

    @classmethod
    def traced(
        cls,
        tracking_uri: str | None,
        run_id: str | None = None,
        experiment: str | None = None,
        resume: bool = False,
    ) -> RunHandle:
        """The run a trace recorder writes into, as MLflow's own integrations pick it.

        ``run_id`` if given (with ``resume``: RUNNING again if it had ended, and then
        ``created``, so this process ends it); else, when ``tracking_uri`` is MLflow's
        current URI (the default), MLflow's active run, else ``MLFLOW_RUN_ID`` (under
        ``mlflow run``); else a new run (:func:`create_run`: in ``experiment``, else
        ``MLFLOW_EXPERIMENT_NAME`` / ``MLFLOW_EXPERIMENT_ID``). MLflow's current URI and
        active run are only read, never changed."""
        import mlflow

        from soi_mlflow.tracking.health import check_tracking, get_run

        fluent = mlflow.get_tracking_uri()
        uri = tracking_uri or fluent
        check_tracking(uri)  # fail in seconds, not after MLflow's retries
        client = mlflow.MlflowClient(uri)
        what = "run id"
        if run_id is None and uri == fluent:
            active = mlflow.active_run()
            if active is not None:
                run_id = active.info.run_id
            elif os.environ.get("MLFLOW_RUN_ID"):
                run_id, what = os.environ["MLFLOW_RUN_ID"], "MLFLOW_RUN_ID"
        if run_id is None:
            run = _new_run(client, experiment, "traced")
            return cls(client, run.info.run_id, run.info.experiment_id, uri, created=True)
        run = get_run(client, run_id, uri, what)
        created = resume and run.info.status != "RUNNING"
        if created:
            client.update_run(run.info.run_id, status="RUNNING")
        return cls(client, run.info.run_id, run.info.experiment_id, uri, created)

    @classmethod
    def attach(cls, tracking_uri: str | None, run_id: str) -> RunHandle:
        """Reopen ``run_id`` to resume it: RUNNING again, ended by ``run_end.end_run``."""
        from mlflow import MlflowClient

        from soi_mlflow.tracking.health import check_tracking, get_run

        uri = resolve_tracking_uri(tracking_uri)
        check_tracking(uri)
        client = MlflowClient(uri)
        run = get_run(client, run_id, uri, "resume run id")
        if run.info.status != "RUNNING":
            client.update_run(run_id, status="RUNNING")
        return cls(client, run_id, run.info.experiment_id, uri, created=True)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        if tags:
            self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log params not already on the run (``mlflow run`` logs its entry-point
        parameters first, in its own spelling; MLflow forbids changing a param)."""
        from mlflow.entities import Param

        existing = self.client.get_run(self.run_id).data.params
        items = [
            Param(k, str(v)[:6000])
            for k, v in params.items()
            if v is not None and k not in existing
        ]
        for start in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[start : start + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        log_metric_batch(self.client, self.run_id, metrics, step)

    def log_artifact(self, local_path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(local_path), artifact_path)

    def log_dataset(self, frame: Any, name: str, context: str, source: str | None = None) -> None:
        """Log a data set as a run input, with MLflow's digest of its content."""
        import mlflow.data
        from mlflow.entities import DatasetInput, InputTag

        with warnings.catch_warnings():  # MLflow's hint on integer columns is not for us
            warnings.simplefilter("ignore", UserWarning)
            entity = mlflow.data.from_pandas(frame, name=name, source=source)._to_mlflow_entity()
        tag = InputTag("mlflow.data.context", context)
        self.client.log_inputs(self.run_id, [DatasetInput(entity, [tag])])

    def ui_command(self) -> str:
        """What to open to see this run: the runs table and the run, in the MLflow UI's
        model-training view (with the ``mlflow ui`` command first for a local store)."""
        from soi_mlflow.tracking.links import ui_command

        return ui_command(self.tracking_uri, self.experiment_id, self.run_id)


_NOT_METRIC_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def metric_safe(name: object) -> str:
    """``name`` (data: a member, a split, a source) as one segment of a metric key, a table
    or a figure name: ASCII letters, digits, ``_ . -`` are kept, anything else becomes
    ``_``, and a segment of only dots (``.``, ``..``, which MLflow refuses as path parts)
    becomes underscores. MLflow's metric names (mlflow/utils/validation.py) also allow
    spaces, ``:`` and ``/``; those are escaped here: ``/`` separates segments, and the
    segment names files too."""
    safe = _NOT_METRIC_SAFE.sub("_", str(name))
    return "_" * max(len(safe), 1) if not safe.strip(".") else safe


def log_metric_batch(client: Any, run_id: str, metrics: Mapping[str, float], step: int) -> None:
    """Log ``metrics`` at ``step`` in as few requests as MLflow allows."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [Metric(k, float(v), now, step) for k, v in metrics.items()]
    for start in range(0, len(items), 1000):
        client.log_batch(run_id, metrics=items[start : start + 1000])


def ensure_experiment(client: Any, name: str) -> str:
    """The id of experiment ``name``, created if missing (safe when two processes race)
    and tagged as a model-training experiment, so the MLflow UI opens on its runs."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            raise SoiInputError(f"experiment {name!r} is deleted; restore it or pick another name")
        return found.experiment_id
    try:
        return client.create_experiment(name, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
    except MlflowException:
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def create_run(client: Any, experiment: str | None = None, prefix: str = "traced") -> str:
    """A new run of ``client``'s store in ``experiment`` (else ``MLFLOW_EXPERIMENT_NAME``,
    else ``MLFLOW_EXPERIMENT_ID``, else the default experiment), as MLflow's own
    integrations pick it; MLflow's active run and global URI are not touched. Named by
    :func:`fresh_run_name`."""
    return _new_run(client, experiment, prefix).info.run_id


def _new_run(client: Any, experiment: str | None, prefix: str) -> Any:
    name = experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME")
    experiment_id = (
        ensure_experiment(client, name) if name else os.environ.get("MLFLOW_EXPERIMENT_ID", "0")
    )
    return client.create_run(experiment_id, run_name=fresh_run_name(prefix))


def fresh_run_name(prefix: str) -> str:
    """``<prefix>-<date>-<time>-<4 hex digits>``: readable, unique, and drawn without the
    global ``random`` generator, which MLflow's own name generator (used when a run is
    created without a name) advances in the user's process."""
    import secrets

    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
