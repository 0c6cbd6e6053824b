"""Opening runs: :func:`open_run`, the one way a run is opened, created or attached to.

Every writer of a run starts here (the built-in trainer, study parents, the trace
recorder, the ``transformers`` adapter, comparison runs): the tracking URI by the one rule
(``store.resolve_tracking_uri``), the store checked in seconds, the store's one client,
then the run (an existing one, ``mlflow run``'s, MLflow's active run or a new one), as a
:class:`~soi_mlflow.tracking.run.RunHandle` that is handed down and ends the run
(:meth:`~soi_mlflow.tracking.run.RunHandle.end`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

from soi_mlflow.errors import SoiInputError
from soi_mlflow.tracking.health import check_tracking, get_run
from soi_mlflow.tracking.run import (
    DEFAULT_EXPERIMENT,
    RunHandle,
    ensure_experiment,
    fresh_run_name,
)
from soi_mlflow.tracking.store import client_for, resolve_tracking_uri, same_store

Adopt = Literal["mlflow_run", "integration", "new"]
ADOPT = ("mlflow_run", "integration", "new")


def open_run(
    tracking_uri: str | None = None,
    *,
    run_id: str | None = None,
    resume: bool = False,
    owned: bool | None = None,
    adopt: Adopt = "mlflow_run",
    parent_run_id: str | None = None,
    experiment: str | None = None,
    experiment_id: str | None = None,
    run_name: str | None = None,
    prefix: str = "traced",
    tags: Mapping[str, str] | None = None,
    start_active: bool = False,
    what: str = "run id",
) -> RunHandle:
    """Open the run to write into, in the store of ``tracking_uri`` (the flag, else
    ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``; checked within seconds).

    Which run, the first that applies:

    - ``run_id`` (named ``what`` in errors): that run; with ``resume``, RUNNING again if
      it had ended.
    - ``parent_run_id``: a new child run of it, in the parent's experiment.
    - ``adopt="mlflow_run"`` (the built-in trainer, study parents): ``$MLFLOW_RUN_ID``,
      the run ``mlflow run`` created, if set.
    - ``adopt="integration"`` (the trace recorder, the ``transformers`` adapter), as
      MLflow's own integrations pick a run: MLflow's active run, else ``$MLFLOW_RUN_ID``,
      both only when the store is MLflow's current one (only read, never changed).
    - otherwise (and ``adopt="new"``) a new run: in ``experiment_id``, else the experiment
      ``experiment`` (created if missing), else ``soi-mlflow``, or, for
      ``adopt="integration"``, ``$MLFLOW_EXPERIMENT_NAME``, ``$MLFLOW_EXPERIMENT_ID`` or
      MLflow's default experiment; named ``run_name``, else ``<prefix>-<time>-<hex>``;
      with ``start_active``, in MLflow's current store, as MLflow's active run (the
      ``transformers`` adapter's, so that transformers' ``MLflowCallback`` logs into it).

    ``tags`` are set on the run either way (an adopted run also gets ``run_name`` when it
    has none). The handle's ``created`` says whether this process ends the run: a new run,
    one reopened by ``resume``, or whatever ``owned`` says."""
    if adopt not in ADOPT:
        raise SoiInputError(f"adopt: expected one of {', '.join(ADOPT)}, got {adopt!r}")
    uri = resolve_tracking_uri(tracking_uri)
    check_tracking(uri)  # seconds, not MLflow's minutes of retries, on a dead server
    client = client_for(uri)
    parent = get_run(client, parent_run_id, uri, "parent run id") if parent_run_id else None
    existing, what = _existing(uri, run_id, what, adopt, parent is not None)
    all_tags = dict(tags or {})
    if existing is not None:
        run = get_run(client, existing, uri, what)
        reopen = resume and run.info.status != "RUNNING"
        if reopen:
            client.update_run(run.info.run_id, status="RUNNING")
        if run_name and not run.info.run_name:
            all_tags["mlflow.runName"] = run_name
        handle = RunHandle(
            client,
            run.info.run_id,
            run.info.experiment_id,
            uri,
            created=reopen if owned is None else owned,
        )
        handle.set_tags(all_tags)
        return handle
    if parent is not None:
        all_tags["mlflow.parentRunId"] = parent.info.run_id
        experiment_id = experiment_id or parent.info.experiment_id
    name = run_name or fresh_run_name(prefix)  # given: MLflow draws no random name
    if start_active and parent is None and _in_mlflows_store(uri):
        import mlflow

        run = mlflow.start_run(experiment_id=experiment_id, run_name=name, tags=all_tags)
        return RunHandle(
            client, run.info.run_id, run.info.experiment_id, uri, created=True, fluent=True
        )
    if experiment_id is None:
        experiment_id = _experiment_id(client, experiment, adopt)
    run = client.create_run(experiment_id, run_name=name, tags=all_tags)
    return RunHandle(client, run.info.run_id, experiment_id, uri, created=True)


def _existing(
    uri: str, run_id: str | None, what: str, adopt: str, child: bool
) -> tuple[str | None, str]:
    """The id of the run to attach to, and what it is called in errors; None: a new run."""
    if run_id is not None:
        return run_id, what
    if child or adopt == "new":
        return None, what
    env_run = os.environ.get("MLFLOW_RUN_ID") or None
    if adopt == "mlflow_run":
        return env_run, "MLFLOW_RUN_ID"
    if not _in_mlflows_store(uri):
        return None, what
    import mlflow

    active = mlflow.active_run()
    if active is not None:
        return active.info.run_id, "MLflow's active run"
    return env_run, "MLFLOW_RUN_ID"


def _in_mlflows_store(uri: str) -> bool:
    """Whether ``uri`` is MLflow's current store (its global URI is only read)."""
    import mlflow

    return same_store(uri, mlflow.get_tracking_uri())


def _experiment_id(client: Any, experiment: str | None, adopt: str) -> str:
    """A new run's experiment: ``experiment``, else soi-mlflow's default or, for a run
    picked as MLflow's integrations pick one, MLflow's (``$MLFLOW_EXPERIMENT_NAME``, else
    ``$MLFLOW_EXPERIMENT_ID``, else the default experiment ``0``)."""
    if adopt != "integration":
        return ensure_experiment(client, experiment or DEFAULT_EXPERIMENT)
    name = experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME")
    return ensure_experiment(client, name) if name else os.environ.get("MLFLOW_EXPERIMENT_ID", "0")
