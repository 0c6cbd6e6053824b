"""Naming rules of the trace recorder: split names, their metric prefixes, the default
task, and where an epoch's trace file goes in the run.

The layout of a split's traces, in one place (docs/design.md, "MLflow conventions")::

    traces/<split>/epoch=NNN.parquet            one file per epoch (gathered on rank 0)
    traces/<split>/epoch=NNN/rank=R.parquet     one shard per rank under torch.distributed

Readers group a listing by epoch (:func:`group_trace_files`): an epoch is its gathered
file, if any, then its shards in rank order, and an example found in several of them
counts with its last (the recorder writes them disjoint; see ``tracking/shards.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from soi_mlflow.errors import SoiInputError

SPLIT_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# the built-in trainer's splits, in the order analyses and pages list them; any name
# check_split_name accepts is a split as good as these (the one rule for split names)
BUILTIN_SPLITS = ("train", "validation", "test", "ood")
METRIC_PREFIX = {"train": "train", "validation": "val", "test": "test", "ood": "ood"}
DEFAULT_TASK = "default"
# the tail of a trace file's path: epoch=NNN.parquet, or epoch=NNN/rank=R.parquet
TRACE_FILE = re.compile(r"(?:^|/)epoch=(\d+)(?:\.parquet|/rank=(\d+)\.parquet)$")
EPOCH_FOLDER = re.compile(r"(?:^|/)epoch=(\d+)$")

P = TypeVar("P", str, Path)


def trace_artifact_path(split: str) -> str:
    return f"traces/{split}"


def trace_file_name(epoch: int) -> str:
    return f"epoch={epoch:03d}.parquet"


def shard_artifact_path(split: str, epoch: int) -> str:
    """The folder of an epoch's shards: ``traces/<split>/epoch=NNN``."""
    return f"{trace_artifact_path(split)}/epoch={epoch:03d}"


def shard_file_name(rank: int) -> str:
    return f"rank={rank}.parquet"


def shard_path(epoch: int, rank: int) -> str:
    """A shard's path relative to ``traces/<split>/``: ``epoch=NNN/rank=R.parquet``."""
    return f"epoch={epoch:03d}/{shard_file_name(rank)}"


def parse_trace_path(path: str | Path) -> tuple[int, int | None] | None:
    """``(epoch, rank)`` of a trace file's path (relative or not; ``rank`` None for a
    gathered file), or None for a path that names no trace file."""
    found = TRACE_FILE.search(Path(path).as_posix())
    if found is None:
        return None
    return int(found.group(1)), None if found.group(2) is None else int(found.group(2))


def listed_epoch(path: str, is_dir: bool) -> int | None:
    """The epoch of an entry of a ``traces/<split>`` listing: a gathered file or a folder
    of shards; None for anything else."""
    if is_dir:
        found = EPOCH_FOLDER.search(path.rstrip("/"))
        return int(found.group(1)) if found else None
    parsed = parse_trace_path(path)
    return parsed[0] if parsed and parsed[1] is None else None


def group_trace_files(paths: Iterable[P]) -> dict[int, list[P]]:
    """A listing's trace files by epoch (epochs ascending): each epoch's gathered file
    first, then its shards by rank. Paths that name no trace file are left out."""
    keyed: dict[int, list[tuple[int, P]]] = {}
    for path in paths:
        parsed = parse_trace_path(path)
        if parsed is not None:
            epoch, rank = parsed
            keyed.setdefault(epoch, []).append((-1 if rank is None else rank, path))
    return {e: [p for _, p in sorted(keyed[e], key=lambda x: x[0])] for e in sorted(keyed)}


def local_trace_files(folder: Path) -> list[Path]:
    """The trace files under a local ``traces/<split>`` folder, in reading order (epoch,
    then the gathered file, then shards by rank)."""
    found = [*folder.glob("epoch=*.parquet"), *folder.glob("epoch=*/rank=*.parquet")]
    return [p for files in group_trace_files(found).values() for p in files]


def check_split_name(split: Any) -> str:
    """The one rule for split names, wherever one comes from (a recorder, an adapter, the
    analysis, a request to the soi pages): a split name becomes a folder and a metric
    prefix, so it is 1-64 letters, digits, ``_ . -`` and neither ``.`` nor ``..``. Any
    such name is a split, not only :data:`BUILTIN_SPLITS`."""
    if not is_split_name(split):
        raise SoiInputError(
            f"split name {split!r}: expected 1-64 letters, digits, '_', '.' or '-' "
            "(it names the folder traces/<split>/ and the metrics of that split)"
        )
    return split


def split_names(names: str | Iterable[str] | None) -> list[str] | None:
    """An adapter's ``eval_splits``: one name or several, each checked; None (or none
    given) stays None, so the default names apply."""
    listed = [names] if isinstance(names, str) else list(names or ())
    return [check_split_name(n) for n in listed] or None


def is_split_name(split: Any) -> bool:
    """Whether :func:`check_split_name` accepts ``split``."""
    return isinstance(split, str) and bool(SPLIT_NAME.match(split)) and split not in (".", "..")


def in_split_order(names: Iterable[str]) -> list[str]:
    """``names`` with the built-in splits first, in :data:`BUILTIN_SPLITS` order, then
    the others sorted: the order analyses run in and pages list splits."""
    given = set(names)
    return [s for s in BUILTIN_SPLITS if s in given] + sorted(given - set(BUILTIN_SPLITS))
