"""``mlflow server --app-name soi``: MLflow's tracking server plus the soi pages.

MLflow 3 serves its Flask app under FastAPI (uvicorn, the default) and serves the Flask
app alone under gunicorn or waitress. The soi routes are added to the Flask app, so they
sit behind whatever wraps it, MLflow's own basic-auth hooks included
(``soi_mlflow.server.auth``).
"""

from __future__ import annotations

from typing import Any

from soi_mlflow.server.views import ROUTES, blueprint

PREFIX = "/soi"


def route_paths() -> list[str]:
    """The full paths of the soi routes, after any ``--static-prefix``."""
    from mlflow.server.handlers import _add_static_prefix

    return [_add_static_prefix(f"{PREFIX}/{r}") for r in ROUTES]


def add_soi_routes(flask_app: Any) -> list[str]:
    """Register the soi blueprint on MLflow's Flask app (once); return the route paths."""
    from mlflow.server.handlers import _add_static_prefix

    if blueprint.name not in flask_app.blueprints:
        flask_app.register_blueprint(blueprint, url_prefix=_add_static_prefix(PREFIX))
    return route_paths()


def wrap_for_server(flask_app: Any) -> Any:
    """The FastAPI wrapper under uvicorn (as MLflow's own app), the Flask app otherwise."""
    from mlflow.environment_variables import _MLFLOW_SGI_NAME

    if _MLFLOW_SGI_NAME.get() == "uvicorn":
        from mlflow.server.fastapi_app import create_fastapi_app

        return create_fastapi_app(flask_app)
    return flask_app


def create_app() -> Any:
    """The ``soi`` app factory named by the ``mlflow.app`` entry point."""
    from mlflow.server import app as flask_app

    add_soi_routes(flask_app)
    return wrap_for_server(flask_app)
