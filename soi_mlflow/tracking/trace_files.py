"""Where a run's trace files are, and a pyarrow filesystem that reads them there.

:func:`locate_traces` lists ``traces/<split>/`` through MLflow (both layouts: one file per
epoch, ``epoch=NNN.parquet``, and DDP shards, ``epoch=NNN/rank=R.parquet``), groups the
files by epoch, and picks the cheapest way to read them:

========  ============================================================================
source    when
========  ============================================================================
local     the artifact root is a local folder (``file://`` or a path): read in place
http      an ``mlflow-artifacts:`` (or ``http(s)://``) root that answers range requests:
          Parquet footers and only the needed columns are fetched
s3        an ``s3://`` root that pyarrow's S3 filesystem can open
cache     anything else, or a location that fails to open: the files are downloaded
          once into the :class:`~soi_mlflow.tracking.artifacts.ArtifactCache`
========  ============================================================================
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import pyarrow.fs as pafs

from soi_mlflow.errors import SoiInputError
from soi_mlflow.tracking import remote_fs
from soi_mlflow.tracking.artifacts import ArtifactCache
from soi_mlflow.tracking.health import get_run
from soi_mlflow.tracking.names import check_split_name, listed_epoch, parse_trace_path

log = logging.getLogger(__name__)

PARQUET_MAGIC = b"PAR1"


@dataclass(frozen=True)
class Listed:
    """One trace file as the store lists it: its artifact path and size (None: unknown)."""

    path: str
    size: int | None


@dataclass(frozen=True)
class TraceFiles:
    """A run's trace files of one split: ``epochs`` maps each epoch to its files (one, or
    one per rank in rank order), as paths of ``filesystem``; ``artifacts`` maps each of
    those paths back to its artifact path in the run (for messages)."""

    run_id: str
    split: str
    source: str  # "local" | "http" | "s3" | "cache"
    filesystem: pafs.FileSystem
    epochs: dict[int, list[str]]
    artifacts: dict[str, str]

    @property
    def paths(self) -> list[str]:
        """Every file, in epoch order (the ranks of an epoch together, in rank order)."""
        return [p for e in sorted(self.epochs) for p in self.epochs[e]]


def list_traces(client: Any, run_id: str, split: str) -> dict[int, list[Listed]]:
    """The run's trace files of ``split`` by epoch, listed through ``client``; shard
    folders are listed one level down. Names outside the layout are ignored."""
    folder = f"traces/{check_split_name(split)}"
    found: dict[int, list[Listed]] = defaultdict(list)
    for item in client.list_artifacts(run_id, folder):
        name = item.path.rsplit("/", 1)[-1]
        epoch = listed_epoch(name, item.is_dir)
        if epoch is None:
            continue
        if not item.is_dir:
            found[epoch].insert(0, Listed(f"{folder}/{name}", item.file_size))
            continue
        shards = []
        for shard in client.list_artifacts(run_id, f"{folder}/{name}"):
            leaf = shard.path.rsplit("/", 1)[-1]
            parsed = None if shard.is_dir else parse_trace_path(f"{name}/{leaf}")
            if parsed is not None and parsed[1] is not None:
                shards.append((parsed[1], Listed(f"{folder}/{name}/{leaf}", shard.file_size)))
        found[epoch] += [listed for _, listed in sorted(shards, key=lambda s: s[0])]
    return {e: found[e] for e in sorted(found) if found[e]}


def no_traces(client: Any, run_id: str, split: str) -> SoiInputError:
    """The error for a run without traces of ``split``, naming the splits it has."""
    names = sorted(a.path.split("/")[-1] for a in client.list_artifacts(run_id, "traces"))
    return SoiInputError(
        f"run {run_id} has no traces of split {split!r}; its traced splits: "
        f"{', '.join(names) or 'none'}"
    )


def locate_traces(cache: ArtifactCache, run_id: str, split: str = "train") -> TraceFiles:
    """Where ``run_id``'s trace files of ``split`` are read from (the module docstring).

    ``cache`` gives the store's client and the fallback download. A run without traces of
    ``split`` is a :class:`~soi_mlflow.errors.SoiInputError` naming its traced splits."""
    split = check_split_name(split)
    run = get_run(cache.client, run_id, cache.tracking_uri)
    listed = list_traces(cache.client, run_id, split)
    if not listed:
        raise no_traces(cache.client, run_id, split)
    root = run.info.artifact_uri or ""
    for locate in (_in_place, _over_http, _on_s3):
        try:
            found = locate(root, cache.tracking_uri, run_id, split, listed)
            if found is not None and _opens(found):
                return found
        except Exception as exc:  # noqa: BLE001 - any failure to open falls back to the cache
            log.info("run %s: reading traces through the cache: %s", run_id, exc)
    return cached_trace_files(cache, run_id, split, listed)


def cached_trace_files(
    cache: ArtifactCache, run_id: str, split: str, listed: dict[int, list[Listed]]
) -> TraceFiles:
    """The listed files downloaded into the cache (each folder once), as local paths."""
    folders = sorted({f.path.rsplit("/", 1)[0] for files in listed.values() for f in files})
    local = {folder: cache.folder(run_id, folder) for folder in folders}
    return _build(
        run_id,
        split,
        "cache",
        pafs.LocalFileSystem(),
        listed,
        lambda f: str(local[f.path.rsplit("/", 1)[0]] / f.path.rsplit("/", 1)[1]),
    )


def _build(
    run_id: str,
    split: str,
    source: str,
    filesystem: pafs.FileSystem,
    listed: dict[int, list[Listed]],
    where: Any,
) -> TraceFiles:
    epochs = {e: [where(f) for f in files] for e, files in listed.items()}
    artifacts = {where(f): f.path for files in listed.values() for f in files}
    return TraceFiles(run_id, split, source, filesystem, epochs, artifacts)


def _in_place(
    root: str, tracking_uri: str, run_id: str, split: str, listed: dict[int, list[Listed]]
) -> TraceFiles | None:
    import os

    folder = remote_fs.local_root(root)
    if folder is None:
        return None
    fs = pafs.LocalFileSystem()
    return _build(run_id, split, "local", fs, listed, lambda f: os.path.join(folder, f.path))


def _over_http(
    root: str, tracking_uri: str, run_id: str, split: str, listed: dict[int, list[Listed]]
) -> TraceFiles | None:
    base = remote_fs.http_root(root, tracking_uri)
    if base is None:
        return None
    sizes = {f"{base}/{f.path}": f.size for files in listed.values() for f in files}
    fs = remote_fs.http_filesystem(sizes)
    return _build(run_id, split, "http", fs, listed, lambda f: f"{base}/{f.path}")


def _on_s3(
    root: str, tracking_uri: str, run_id: str, split: str, listed: dict[int, list[Listed]]
) -> TraceFiles | None:
    base = remote_fs.s3_location(root)
    fs = remote_fs.s3_filesystem() if base is not None else None
    if fs is None:
        return None
    return _build(run_id, split, "s3", fs, listed, lambda f: f"{base}/{f.path}")


def _opens(found: TraceFiles) -> bool:
    """The first file opens and reads at an offset (its last bytes), so a store that
    cannot be reached, or a server that ignores range requests, fails here and the cache
    is used, rather than in the middle of an analysis. What the bytes are is the trace
    reader's concern."""
    with found.filesystem.open_input_file(found.paths[0]) as f:
        size = f.size()
        tail = min(size, len(PARQUET_MAGIC))
        f.read_at(tail, size - tail)
    return True
