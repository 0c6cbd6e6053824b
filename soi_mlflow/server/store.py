"""The tracking server's own stores, seen through the three calls the artifact cache needs.

Inside ``mlflow server`` there is no tracking URI to call back into (and calling the
server over HTTP would need the user's credentials): runs are read from the server's
tracking store and artifacts from its artifact repositories, resolved the way MLflow's own
artifact handlers resolve them (proxied ``mlflow-artifacts:`` roots go to
``--artifacts-destination``). Every artifact path is checked with MLflow's own
path-traversal guard before it reaches a repository.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from soi_mlflow.errors import SoiInputError
from soi_mlflow.tracking.health import check_run_id


class ServerStoreClient:
    """``get_run``, ``list_artifacts`` and ``download_artifacts`` on the server's stores."""

    def get_run(self, run_id: str) -> Any:
        from mlflow.server.handlers import _get_tracking_store

        return _get_tracking_store().get_run(check_run_id(run_id))

    def _repo_and_path(self, run_id: str, path: str) -> tuple[Any, str]:
        from mlflow.server import handlers
        from mlflow.utils.uri import validate_path_is_safe

        path = validate_path_is_safe(path)
        run = self.get_run(run_id)
        root = run.info.artifact_uri
        if handlers._is_servable_proxied_run_artifact_root(root):
            repo = handlers._get_artifact_repo_mlflow_artifacts()
            full = handlers._get_proxied_run_artifact_destination_path(root, path)
            return repo, handlers._get_workspace_scoped_repo_path_if_enabled(full)
        return handlers._get_artifact_repo(run), path

    def list_artifacts(self, run_id: str, path: str) -> list[Any]:
        from mlflow.entities import FileInfo

        repo, full = self._repo_and_path(run_id, path)
        # Listed paths are made relative to the run again, as the REST API does.
        return [
            FileInfo(f"{path.rstrip('/')}/{Path(f.path).name}", f.is_dir, f.file_size)
            for f in repo.list_artifacts(full)
        ]

    def download_artifacts(self, run_id: str, path: str, dst_path: str) -> str:
        repo, full = self._repo_and_path(run_id, path)
        local = repo.download_artifacts(full, dst_path)
        return os.fspath(local)


def server_backend_uri() -> str:
    """The server's backend store URI (what ``mlflow server`` passes to its workers)."""
    from mlflow.server import BACKEND_STORE_URI_ENV_VAR

    uri = os.environ.get(BACKEND_STORE_URI_ENV_VAR)
    if not uri:
        raise SoiInputError("not running inside `mlflow server` (no backend store is set)")
    return uri
