"""pyarrow filesystems that reach a run's artifacts where the store keeps them.

- a local artifact root (``file://`` or a plain absolute path): the local filesystem, read
  in place;
- ``mlflow-artifacts:`` (and plain ``http(s)://``) artifact URIs: fsspec's HTTP filesystem
  against the tracking server's artifact REST path, wrapped for pyarrow, so that a Parquet
  read fetches the footer and the columns it needs with HTTP range requests;
- ``s3://``: pyarrow's own S3 filesystem, the endpoint from ``MLFLOW_S3_ENDPOINT_URL`` (as
  MLflow's client uses it) and the credentials from the usual AWS chain.

Every function here returns None for a location it does not handle, and the caller
(:mod:`~soi_mlflow.tracking.trace_files`) falls back to downloading into the cache.
Credentials are read from MLflow's and AWS's environment variables and passed to the
filesystem explicitly; nothing here changes the environment.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import pyarrow.fs as pafs

ARTIFACTS_API = "/api/2.0/mlflow-artifacts/artifacts"
# what a URL or object key built here may hold: store-given experiment/run folders are
# checked against it (anything else is left to MLflow's own client, through the cache)
SAFE_PATH = re.compile(r"^[A-Za-z0-9_.=/+-]*$")
TRUE = ("true", "1", "yes")


def safe_path(path: str) -> bool:
    """``path`` has only characters that need no escaping, and no ``..`` segment."""
    return bool(SAFE_PATH.match(path)) and ".." not in path.split("/")


def local_root(artifact_uri: str) -> str | None:
    """The local folder of a ``file://`` or plain-path artifact URI, else None."""
    parsed = urlparse(artifact_uri)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        return url2pathname(parsed.path)
    if parsed.scheme == "" and os.path.isabs(artifact_uri):
        return artifact_uri
    return None


def http_root(artifact_uri: str, tracking_uri: str) -> str | None:
    """The HTTP URL of the artifact root: an ``mlflow-artifacts:`` URI resolved against the
    tracking server as MLflow resolves it (host from the URI if it names one), or an
    ``http(s)://`` artifact URI as it is. None for anything else."""
    art, track = urlparse(artifact_uri), urlparse(tracking_uri)
    if art.scheme in ("http", "https"):
        base, path = f"{art.scheme}://{art.netloc}", art.path
    elif art.scheme == "mlflow-artifacts" and track.scheme in ("http", "https"):
        netloc = art.netloc or track.netloc
        base = f"{track.scheme}://{netloc}"
        path = f"{track.path.rstrip('/')}{ARTIFACTS_API}/{art.path.lstrip('/')}"
    else:
        return None
    path = re.sub(r"//+", "/", path).rstrip("/")
    if art.query or art.fragment or not safe_path(path):
        return None
    return base + path


def http_options(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Request options for fsspec/aiohttp from MLflow's client settings: Basic auth from
    ``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` (else a Bearer ``MLFLOW_TRACKING_TOKEN``, as
    MLflow's REST client chooses), ``MLFLOW_TRACKING_INSECURE_TLS``, and the
    ``MLFLOW_TRACKING_SERVER_CERT_PATH`` / ``CLIENT_CERT_PATH`` certificates."""
    import base64

    env = os.environ if env is None else env
    options: dict[str, Any] = {}
    user, password = env.get("MLFLOW_TRACKING_USERNAME"), env.get("MLFLOW_TRACKING_PASSWORD")
    token = env.get("MLFLOW_TRACKING_TOKEN")
    if user and password:
        basic = base64.standard_b64encode(f"{user}:{password}".encode()).decode()
        options["headers"] = {"Authorization": f"Basic {basic}"}
    elif token:
        options["headers"] = {"Authorization": f"Bearer {token}"}
    server_cert = env.get("MLFLOW_TRACKING_SERVER_CERT_PATH")
    client_cert = env.get("MLFLOW_TRACKING_CLIENT_CERT_PATH")
    if env.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() in TRUE:
        options["ssl"] = False
    elif server_cert or client_cert:
        import ssl

        context = ssl.create_default_context(cafile=server_cert or None)
        if client_cert:
            context.load_cert_chain(client_cert)
        options["ssl"] = context
    return options


def http_filesystem(sizes: Mapping[str, int | None]) -> pafs.FileSystem:
    """fsspec's HTTP filesystem for pyarrow. Files are read with range requests only (no
    read-ahead block, no whole-file fetch); ``sizes`` (URL -> bytes, from the artifact
    listing) spare a HEAD request per file opened."""
    from fsspec.implementations.http import HTTPFileSystem

    fs = HTTPFileSystem(cache_type="none", **http_options())
    return pafs.PyFileSystem(_ListedFilesHandler(fs, dict(sizes)))


class _ListedFilesHandler(pafs.FSSpecHandler):
    """pyarrow's fsspec handler, for files already listed: opening one neither GETs the
    whole file to see that it exists (fsspec's ``isfile`` over HTTP) nor asks its size."""

    def __init__(self, fs: Any, sizes: dict[str, int | None]) -> None:
        super().__init__(fs)
        self.sizes = sizes

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        known = [p for p in paths if self.sizes.get(p) is not None]
        if len(known) < len(paths):
            return super().get_file_info(paths)
        return [pafs.FileInfo(p, pafs.FileType.File, size=self.sizes[p]) for p in paths]

    def open_input_file(self, path: str) -> Any:
        from pyarrow import PythonFile

        return PythonFile(self.fs.open(path, mode="rb", size=self.sizes.get(path)), mode="r")


def s3_location(artifact_uri: str) -> str | None:
    """``bucket/key`` of an ``s3://`` artifact URI (pyarrow's path form), else None."""
    parsed = urlparse(artifact_uri)
    if parsed.scheme != "s3" or not parsed.netloc or parsed.query or parsed.fragment:
        return None
    path = f"{parsed.netloc}/{parsed.path.strip('/')}".rstrip("/")
    return path if safe_path(path) else None


def s3_filesystem(env: Mapping[str, str] | None = None) -> pafs.FileSystem | None:
    """pyarrow's S3 filesystem as MLflow's client reaches the bucket: the endpoint from
    ``MLFLOW_S3_ENDPOINT_URL`` (else ``AWS_ENDPOINT_URL``, else AWS), the region from
    ``AWS_REGION``/``AWS_DEFAULT_REGION`` when set, credentials from the AWS chain
    (environment, shared files, instance role). None when ``MLFLOW_S3_IGNORE_TLS`` asks
    for unverified TLS, which pyarrow does not offer."""
    env = os.environ if env is None else env
    if env.get("MLFLOW_S3_IGNORE_TLS", "").lower() in TRUE:
        return None
    options: dict[str, Any] = {}
    endpoint = env.get("MLFLOW_S3_ENDPOINT_URL") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        parsed = urlparse(endpoint)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            return None
        options |= {"endpoint_override": parsed.netloc, "scheme": parsed.scheme}
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        options["region"] = region
    return pafs.S3FileSystem(**options)
