"""Which tracking store, and its one ``MlflowClient``: the rule every module follows.

:func:`resolve_tracking_uri` is the one default rule (the flag or argument, else
``$MLFLOW_TRACKING_URI``, which ``mlflow run`` and ``mlflow.set_tracking_uri`` set, else
``sqlite:///mlflow.db`` in the working directory); :func:`client_for` hands out the one
client of a store in this process, so a training builds one client, not one per module.
MLflow's global URI is never changed: URIs are passed to ``MlflowClient`` (STACK-NOTES).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any
from urllib.parse import unquote

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
TRACKING_URI_HELP = (
    f"MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else {DEFAULT_TRACKING_URI})"
)

_CLIENTS_KEPT = 16  # stores whose client is kept (as analysis/runs.cache_for keeps 8 caches)
_clients: OrderedDict[str, Any] = OrderedDict()
_clients_lock = threading.Lock()


def resolve_tracking_uri(uri: str | None) -> str:
    """The flag, else ``MLFLOW_TRACKING_URI``, else a SQLite file in the working directory."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def client_for(uri: str) -> Any:
    """The ``MlflowClient`` of the store at ``uri`` (a resolved URI), made once per process
    and shared: MLflow's clients hold no run state and MLflow caches each store anyway."""
    with _clients_lock:
        client = _clients.get(uri)
        if client is None:
            from mlflow import MlflowClient

            client = _clients[uri] = MlflowClient(uri)
            while len(_clients) > _CLIENTS_KEPT:
                _clients.popitem(last=False)
        _clients.move_to_end(uri)
        return client


def same_store(a: str, b: str) -> bool:
    """Whether two tracking URIs name one store (``sqlite:///mlflow.db`` and MLflow's own
    absolute spelling of it are one database)."""
    return _canonical(a) == _canonical(b)


def _canonical(uri: str) -> str:
    if uri.startswith("sqlite:///") and "?" not in uri:
        path = unquote(uri[len("sqlite:///") :])
        if path and path != ":memory:":
            return "sqlite:" + os.path.realpath(path)  # a relative path: from the cwd
    return uri.rstrip("/")
