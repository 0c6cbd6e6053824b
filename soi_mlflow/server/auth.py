"""``mlflow server --app-name soi-auth``: MLflow's basic-auth app plus the soi pages.

Composition, not a second login: the soi routes are registered on MLflow's Flask app,
then MLflow's own ``mlflow.server.auth.create_app`` wraps it, so its before-request hook
authenticates every soi request like any other. Authorization uses basic-auth's own
validator table: each soi path is entered there with a validator that asks basic-auth,
for every run the request names (``run_id``, ``run_a``, ``run_b``), whether the user may
read that run (read permission on its experiment, or a run grant), exactly as MLflow's
``GetRun`` does. Admins pass as everywhere; a missing run is refused, not reported, so the
pages are no oracle for which run ids exist. With ``MLFLOW_BASIC_AUTH_FAIL_CLOSED`` on,
the routes are still served, because they have a validator.
"""

from __future__ import annotations

from typing import Any

from soi_mlflow.errors import SoiInputError
from soi_mlflow.server.app import add_soi_routes
from soi_mlflow.server.views import RUN_PARAMS
from soi_mlflow.tracking.health import check_run_id


def can_read_named_runs() -> bool:
    """basic-auth validator: the user may read every run the request names (at least one)."""
    from flask import request
    from mlflow.server import auth

    try:  # the ids the routes read: the same rule, the same (stripped) ids
        ids = [check_run_id(request.args[p], p) for p in RUN_PARAMS if p in request.args]
    except SoiInputError:
        return False
    if not ids:
        return False
    return all(auth._authorize_run_id(i, "read") for i in ids)


def create_app() -> Any:
    """The ``soi-auth`` app factory named by the ``mlflow.app`` entry point."""
    from mlflow.server import app as flask_app
    from mlflow.server import auth

    if not callable(getattr(auth, "_authorize_run_id", None)):  # guard against API drift
        raise RuntimeError(
            "this MLflow's basic-auth has no run authorization hook (_authorize_run_id); "
            "soi-auth cannot protect the soi pages with it"
        )
    for path in add_soi_routes(flask_app):
        for method in ("GET", "HEAD"):
            auth.BEFORE_REQUEST_VALIDATORS[(path, method)] = can_read_named_runs
    return auth.create_app(flask_app)
