"""Artifact I/O of runs: the download cache and the writers of tables, pages and figures.

Downloads (:class:`ArtifactCache`): a local cache keyed by tracking store, run and path,
under ``$SOI_MLFLOW_CACHE/artifacts/`` (:func:`~soi_mlflow.tracking.local.soi_home`). A
folder (``traces/train``) is listed once and only the files not yet cached are fetched,
in one batch. Traces, examples and checkpoints of a finished run never change, so once a
folder of a finished run is complete it is not listed again. What analyses log
(``tables/``, ``figures/``, ``html/``: ``RELOGGED``) is logged again when a run is
re-analysed (``soi-mlflow analyze --parent-run-id``, by any process): such a file is
fetched afresh on each :meth:`ArtifactCache.file`, never read from an earlier copy. Works
the same for SQLite stores and HTTP servers.

Uploads: :func:`log_table` (Parquet and a previewable JSON), :func:`log_html`,
:func:`log_figures`; metrics go with :func:`~soi_mlflow.tracking.run.log_metric_batch`.
The analyses compute; they log through these.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from soi_mlflow.tracking.health import check_tracking, get_run
from soi_mlflow.tracking.local import run_folder_name, soi_home
from soi_mlflow.tracking.store import client_for, resolve_tracking_uri

_DONE = ".complete"
PREVIEW_ROWS = 2_000  # tables up to this size also get a copy the artifact viewer shows
RELOGGED = ("tables/", "figures/", "html/")  # re-logged by a re-analysis: never cached


class ArtifactCache:
    """Downloads artifacts of runs of one tracking store into a local folder, once."""

    def __init__(
        self, tracking_uri: str | None = None, root: Path | None = None, client: Any = None
    ) -> None:
        """``client`` (default the store's one ``MlflowClient``, ``store.client_for``) needs
        only ``get_run``, ``list_artifacts`` and ``download_artifacts``; the server app
        passes its own."""
        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        if client is None:
            check_tracking(self.tracking_uri)  # a dead server fails in seconds, naming the URI
        self.client = client if client is not None else client_for(self.tracking_uri)
        key = hashlib.blake2b(self.tracking_uri.encode(), digest_size=8).hexdigest()
        self.root = (root or soi_home() / "artifacts") / key
        self.downloads = 0  # files fetched from the store by this object (for tests)
        self._known: set[str] = set()  # run ids found in the store

    def _run_id(self, run_id: str) -> str:
        """The folder name of ``run_id`` once it is known to name a run of the store: a
        malformed or unknown id is a clear error, not a path or a traceback."""
        if run_id not in self._known:
            get_run(self.client, run_id, self.tracking_uri)
            self._known.add(run_id)
        return run_folder_name(run_id)

    def folder(self, run_id: str, path: str, subfolders: bool = False) -> Path:
        """The local copy of artifact folder ``path`` of ``run_id`` (fetched as needed);
        with ``subfolders``, its folders' files too, one level down (a trace folder's
        ``epoch=NNN/`` shards)."""
        local = self.root / self._run_id(run_id) / path
        if (local / _DONE).exists():
            return local
        listing = self.client.list_artifacts(run_id, path)
        for sub in listing if subfolders else ():
            if sub.is_dir:
                self.folder(run_id, sub.path)
        wanted = [a for a in listing if subfolders or not a.is_dir]  # done once all are
        missing = [
            a for a in wanted if not a.is_dir and not _has(local / Path(a.path).name, a.file_size)
        ]
        if missing:
            local.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=local.parent, prefix=".fetch-"))
            try:
                with quiet_downloads():
                    fetched = Path(self.client.download_artifacts(run_id, path, str(staging)))
                for a in missing:
                    os.replace(fetched / Path(a.path).name, local / Path(a.path).name)
                self.downloads += len(missing)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        if wanted and self.client.get_run(run_id).info.status == "FINISHED":
            (local / _DONE).touch()
        return local

    def checkpoint(self, run_id: str) -> Path:
        """The local copy of a run's ``checkpoint/`` folder, with its ``encoder/`` and,
        under ``--peft``, its ``adapter/`` (whichever it has)."""
        return self.folder(run_id, "checkpoint", subfolders=True)

    def file(self, run_id: str, path: str) -> Path:
        """The local copy of one artifact file (fetched again each time under ``RELOGGED``:
        a re-analysis may have logged it anew since)."""
        local = self.root / self._run_id(run_id) / path
        if local.exists() and not path.startswith(RELOGGED):
            return local
        local.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=local.parent, prefix=".fetch-"))
        try:
            with quiet_downloads():
                fetched = self.client.download_artifacts(run_id, path, str(staging))
            os.replace(fetched, local)
            self.downloads += 1
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return local


@contextmanager
def quiet_downloads() -> Iterator[None]:
    """No MLflow download progress bars (the many small downloads of an analysis, a
    model being checked and read back)."""
    name = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    saved = os.environ.get(name)
    os.environ[name] = "false"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


def _has(path: Path, size: int | None) -> bool:
    return path.exists() and (size is None or path.stat().st_size == size)


def log_table(client: Any, run_id: str, frame: Any, name: str) -> None:
    """``tables/<name>.parquet`` on the run (index kept when it carries labels), and for
    a table a person reads (at most ``PREVIEW_ROWS`` rows) ``tables/<name>.json`` in
    MLflow's table format, which the run's artifact viewer shows as a table."""
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.parquet"
        keep_index = not isinstance(frame.index, pd.RangeIndex)
        frame.to_parquet(path, index=keep_index)
        client.log_artifact(run_id, str(path), "tables")
    if len(frame) <= PREVIEW_ROWS:
        log_preview_table(client, run_id, frame.reset_index() if keep_index else frame, name)


def log_preview_table(client: Any, run_id: str, frame: Any, name: str) -> None:
    """``tables/<name>.json`` as ``MlflowClient.log_table`` writes it (split orient, the
    ``mlflow.loggedArtifacts`` tag), but replaced rather than appended to on a re-run."""
    import pandas as pd

    path_in_run = f"tables/{name}.json"
    frame = frame.copy()
    frame.columns = [str(c) for c in frame.columns]
    for col in frame.columns:
        if isinstance(frame[col].dtype, pd.CategoricalDtype):
            frame[col] = frame[col].astype(str)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.json"
        frame.to_json(path, orient="split", index=False, double_precision=6)
        client.log_artifact(run_id, str(path), "tables")
    tags = client.get_run(run_id).data.tags
    logged = json.loads(tags.get("mlflow.loggedArtifacts", "[]"))
    entry = {"path": path_in_run, "type": "table"}
    if entry not in logged:
        client.set_tag(run_id, "mlflow.loggedArtifacts", json.dumps([*logged, entry]))


def log_html(client: Any, run_id: str, page: str, path_in_run: str) -> None:
    """One self-contained HTML page as an artifact (the viewer shows it in a sandbox)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(path_in_run).name
        path.write_text(page, encoding="utf-8")
        client.log_artifact(run_id, str(path), str(Path(path_in_run).parent))


def log_figures(client: Any, run_id: str, figs: Mapping[str, Any]) -> None:
    """Each figure as ``figures/<name>.png``, then freed."""
    for name, fig in figs.items():
        client.log_figure(run_id, fig, f"figures/{name}.png")
    free_figures(figs)


def free_figures(figs: Mapping[str, Any]) -> None:
    """Free matplotlib figures once logged; those made through pyplot (elsewhere, by a
    user) are also closed there. pyplot is never imported here just to close."""
    import sys

    pyplot = sys.modules.get("matplotlib.pyplot")
    for fig in figs.values():
        if pyplot is not None:
            pyplot.close(fig)
        fig.clear()
