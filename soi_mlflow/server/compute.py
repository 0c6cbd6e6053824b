"""What the soi pages show, computed on the server from the artifact store and cached.

Artifacts are fetched once into the analysis package's download cache (files of a finished
run never change); computed tables of finished runs are kept in a small in-memory cache,
so a page opened twice is computed once. Only fixed artifact paths are ever read
(``traces/<split>``, ``examples/<split>.parquet``, with ``split`` a name the one
split-name rule accepts, ``tracking/names.py``): no path from a request reaches the
artifact store.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import pandas as pd

from soi_mlflow.analysis.matrix import TraceMatrix
from soi_mlflow.analysis.runs import soi_frame
from soi_mlflow.analysis.transition_tables import transition_matrix
from soi_mlflow.errors import SoiInputError
from soi_mlflow.server.store import ServerStoreClient, server_backend_uri
from soi_mlflow.tracking.artifacts import ArtifactCache
from soi_mlflow.tracking.health import check_run_id
from soi_mlflow.tracking.names import check_split_name, local_trace_files
from soi_mlflow.tracking.search import tag_clause

EXAMPLE_COLUMNS = ("text", "text_pair", "label_name", "planted")


class MissingData(SoiInputError):
    """The run, or the artifacts a page needs, are not in the store (HTTP 404)."""


class LruCache:
    """A thread-safe bounded mapping (Flask serves requests on several threads)."""

    def __init__(self, size: int = 64) -> None:
        self.size, self.items, self.lock = size, OrderedDict(), threading.Lock()

    def get_or_make(self, key: tuple, make: Callable[[], Any], keep: bool) -> Any:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        value = make()
        if keep:
            with self.lock:
                self.items[key] = value
                while len(self.items) > self.size:
                    self.items.popitem(last=False)
        return value


class RunData:
    """SOI tables, example tables and transitions of the server's runs."""

    def __init__(self, client: Any = None, tracking_key: str | None = None) -> None:
        self.client = client if client is not None else ServerStoreClient()
        key = tracking_key or f"soi-server:{server_backend_uri()}"
        self.cache = ArtifactCache(key, client=self.client)
        self.results = LruCache()

    def run(self, run_id: str) -> Any:
        """The run, or a clear error when the store has none of that id."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_run(check_run_id(run_id))
        except MlflowException as e:
            raise MissingData(f"no run {run_id!r} in this tracking server") from e

    def finished(self, *run_ids: str) -> bool:
        return all(self.run(r).info.status == "FINISHED" for r in run_ids)

    def soi_table(self, run_id: str, split: str) -> pd.DataFrame:
        """SOI and cartography per example (the analysis package's ``soi_table``)."""
        split = check_split_name(split)

        def make() -> pd.DataFrame:
            folder = self.cache.folder(run_id, f"traces/{split}", subfolders=True)
            paths = local_trace_files(folder)
            if not paths:
                raise MissingData(f"run {run_id} has no traces of split {split!r}")
            tm = TraceMatrix.from_files(paths)
            table = soi_frame(tm)
            table.attrs |= {"run_id": run_id, "split": split, "epochs": tm.n_epochs}
            return table

        return self.results.get_or_make(("soi", run_id, split), make, keep=self.finished(run_id))

    def examples(self, run_id: str, split: str) -> pd.DataFrame | None:
        """The run's example table of ``split``, or None when the run logged none."""
        split = check_split_name(split)

        def make() -> pd.DataFrame | None:
            listing = self.client.list_artifacts(run_id, "examples")
            if not any(a.path.endswith(f"/{split}.parquet") for a in listing):
                return None
            return pd.read_parquet(self.cache.file(run_id, f"examples/{split}.parquet"))

        return self.results.get_or_make(
            ("examples", run_id, split), make, keep=self.finished(run_id)
        )

    def joined(self, run_id: str, split: str) -> pd.DataFrame:
        """The SOI table with the example table's text and label columns."""
        table = self.soi_table(run_id, split)
        examples = self.examples(run_id, split)
        if examples is None:
            return table
        keep = ["example_id", *(c for c in EXAMPLE_COLUMNS if c in examples)]
        out = table.merge(examples[keep], on="example_id", how="left")
        out.attrs = dict(table.attrs)
        return out

    def transitions(self, run_a: str, run_b: str, split: str) -> pd.DataFrame:
        """Counts of examples by (SOI in ``run_a``, SOI in ``run_b``), with coverage."""
        a, b = self.soi_table(run_a, split), self.soi_table(run_b, split)
        return transition_matrix(a, b)

    def siblings(self, run_id: str, limit: int = 50) -> list[Any]:
        """Other runs of the same parent (the runs a transition is usually asked for)."""
        from mlflow.entities import ViewType
        from mlflow.server.handlers import _get_tracking_store

        run = self.run(run_id)
        parent = run.data.tags.get("mlflow.parentRunId")
        if not parent:
            return []
        found = _get_tracking_store().search_runs(
            [run.info.experiment_id],
            tag_clause("mlflow.parentRunId", parent),
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=limit + 1,
        )
        return [r for r in found if r.info.run_id != run_id][:limit]
