"""Whether a tracking store reaches the machines an executor runs its jobs on."""

from __future__ import annotations

from soi_mlflow.common.executor import ExecutorSettings, is_remote
from soi_mlflow.errors import SoiInputError
from soi_mlflow.tracking.run import resolve_tracking_uri

LOCAL_STORES = ("sqlite", "file", "")


def check_store_reaches_workers(settings: ExecutorSettings, tracking_uri: str | None) -> None:
    """Refuse, before anything starts, a store only this machine reaches (SQLite, a folder)
    when ``settings`` send jobs to a remote Ray cluster; a local cluster may use it."""
    if not is_remote(settings):
        return
    uri = resolve_tracking_uri(tracking_uri)
    scheme = uri.split(":", 1)[0].lower() if "://" in uri or uri.startswith("sqlite:") else ""
    if scheme in LOCAL_STORES:
        raise SoiInputError(
            f"tracking URI {uri!r} is on this machine only, but --ray-address "
            f"{settings.ray_address!r} runs jobs on other nodes: use an http(s) "
            "MLflow tracking server (mlflow server ... --serve-artifacts) or a PostgreSQL "
            "store, with an artifact store every node reaches (the server's proxied "
            "artifacts, S3, a shared file system)"
        )
