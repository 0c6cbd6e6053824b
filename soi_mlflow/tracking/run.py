"""MLflow run conventions (docs/design.md): the open run (:class:`RunHandle`), tags,
params, inputs, metric names, experiments and run names.

Everything goes through ``MlflowClient`` with an explicit run id (no fluent active run),
so it works the same against SQLite, an ``http://`` server and inside ``mlflow run``.
Runs are opened by ``run_open.open_run`` and ended by :meth:`RunHandle.end`.
"""

from __future__ import annotations

import contextlib
import re
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from soi_mlflow.errors import SoiInputError
from soi_mlflow.tracking.health import end_status
from soi_mlflow.tracking.links import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, ui_command
from soi_mlflow.tracking.run_end import end_run
from soi_mlflow.tracking.spool import SendResult, Spool

# the tracking URI's rule lives in store.py; importers of this module keep finding it here
from soi_mlflow.tracking.store import DEFAULT_TRACKING_URI, resolve_tracking_uri
from soi_mlflow.tracking.tags import PREFIX

__all__ = [
    "DEFAULT_EXPERIMENT",
    "DEFAULT_TRACKING_URI",
    "TAG_PREFIX",
    "RunHandle",
    "ensure_experiment",
    "fresh_run_name",
    "log_metric_batch",
    "metric_safe",
    "resolve_tracking_uri",
    "soi_tags",
]

DEFAULT_EXPERIMENT = "soi-mlflow"
TAG_PREFIX = PREFIX  # tracking/tags.py


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
    """An open MLflow run, made once per run by
    :func:`~soi_mlflow.tracking.run_open.open_run` and handed down to whoever writes into
    it (the trace recorder, the trainer, the adapters, the analyses): the store's tracking
    URI and its one client, the run id, and the run's spool. ``created``: this process
    opened (or reopened) the run, so it ends it, through :meth:`end`; ``fluent``: the run
    is MLflow's active run, started for MLflow's own integrations to log into."""

    client: Any
    run_id: str
    experiment_id: str
    tracking_uri: str
    created: bool
    fluent: bool = False

    @property
    def spool(self) -> Spool:
        """The run's upload spool (``tracking/spool.py``): files and metrics wait there
        until the store has them."""
        return Spool(self.run_id, self.tracking_uri)

    def end(
        self,
        exc: BaseException | None = None,
        *,
        status: str | None = None,
        terminate: bool | None = None,
    ) -> SendResult:
        """End the run the one way runs end (:func:`~soi_mlflow.tracking.run_end.end_run`):
        through its spool, ``status`` (default: what ``exc`` calls for) with the reason in
        ``soi.end_reason``, terminated unless not ``terminate`` (default: ``created``; a
        run of ``mlflow run`` is MLflow's to end). A run started as MLflow's active run is
        then taken off MLflow's stack. Never raises."""
        done = end_run(
            self.client,
            self.tracking_uri,
            self.run_id,
            exc,
            self.created if terminate is None else terminate,
            status=status,
        )
        if self.fluent:
            _end_active(self.run_id, status or end_status(exc))
        return done

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

    def log_datasets(self, datasets: Sequence[tuple[Any, str, str]]) -> None:
        """Log data sets as run inputs, with MLflow's digest of each one's content, in one
        request: ``(frame, name, context)`` each (context: the split, MLflow's
        ``mlflow.data.context`` tag)."""
        import mlflow.data
        from mlflow.entities import DatasetInput, InputTag
        from mlflow.exceptions import MlflowException

        inputs = []
        for frame, name, context in datasets:
            with warnings.catch_warnings():  # MLflow's hint on integer columns is not for us
                warnings.simplefilter("ignore", UserWarning)
                entity = mlflow.data.from_pandas(frame, name=name)._to_mlflow_entity()
            inputs.append(DatasetInput(entity, [InputTag("mlflow.data.context", context)]))
        try:
            self.client.log_inputs(self.run_id, inputs)
        except MlflowException as exc:  # wraps the store's own error, by its message
            said = str(exc)
            clash = ("IntegrityError", "UniqueViolation", "duplicate key")
            if "dataset" not in said or not any(word in said for word in clash):
                raise
            # Another process (a study's parallel child) created the same data set in this
            # experiment between MLflow's look-up and its insert; now it exists: link it.
            self.client.log_inputs(self.run_id, inputs)

    def ui_command(self) -> str:
        """What to open to see this run: the runs table and the run, in the MLflow UI's
        model-training view (with the ``mlflow ui`` command first for a local store)."""
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


def fresh_run_name(prefix: str) -> str:
    """``<prefix>-<date>-<time>-<4 hex digits>``: readable, unique, and drawn without the
    global ``random`` generator, which MLflow's own name generator (used when a run is
    created without a name) advances in the user's process."""
    import secrets

    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def _end_active(run_id: str, status: str) -> None:
    """Take ``run_id`` off MLflow's stack of active runs, if it is the active run (its end
    is already in the store: MLflow only marks it ended once more). ``mlflow.end_run`` is
    MLflow's only public way to pop that stack and stop the run's system-metrics monitor,
    so a run started active ends in the spool and is then popped here."""
    import mlflow

    active = mlflow.active_run()
    if active is not None and active.info.run_id == run_id:
        with contextlib.suppress(Exception):  # the store may be away: the spool holds the end
            mlflow.end_run(status)
