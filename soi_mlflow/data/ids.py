"""Stable example identity (docs/design.md, "Example identity").

An ``example_id`` is a signed int64 that depends only on where the example comes from,
never on the process, the run, the mixture, ``max_examples`` or the machine:

- by index (the default): the high 32 bits are a BLAKE2b digest of (dataset, config,
  split) and the low 32 bits the row's index in that original split. Ids of one split
  are then nearly consecutive, which makes trace files small (delta encoding stores a
  sorted id column in about a bit per row);
- by content (``id_from: content``, for data without a stable order): a 64-bit digest of
  the text (and text pair) with its occurrence number among equal texts.

``with_example_ids`` gives a user's own ``datasets.Dataset`` the same ids.

Two different (dataset, config, split) triples share a 32-bit prefix with probability
2^-32; a mixture checks that its ids are unique and says so if they are not.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from soi_mlflow.errors import SoiInputError

_SEP = "\x1f"
MAX_INDEX = 2**32


def stable_id(*parts: object) -> int:
    """One int64 id digested from the parts that locate an example."""
    key = _SEP.join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little", signed=True)


def split_prefix(dataset: str, config: str, split: str) -> int:
    """The 32-bit digest of a (dataset, config, split) triple: the ids' high half."""
    key = _SEP.join((dataset, config, split)).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(key, digest_size=4).digest(), "little")


def index_ids(dataset: str, config: str, split: str, indices: Iterable[int]) -> np.ndarray:
    """Ids for rows known by their index in the original split."""
    idx = np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices)
    idx = idx.astype(np.int64, copy=False)
    if idx.size and (idx.min() < 0 or idx.max() >= MAX_INDEX):
        raise SoiInputError(
            f"row indices must lie in [0, 2^32) for index ids, got {idx.min()}..{idx.max()}"
        )
    high = np.uint64(split_prefix(dataset, config, split)) << np.uint64(32)
    return (high | idx.astype(np.uint64)).view(np.int64)


def content_ids(
    dataset: str, config: str, split: str, texts: Sequence[str], pairs: Sequence[str | None]
) -> np.ndarray:
    """Ids from the text (and text pair); repeated content gets its occurrence number."""
    seen: dict[tuple[str, str | None], int] = {}
    out = np.empty(len(texts), dtype=np.int64)
    for k, (text, pair) in enumerate(zip(texts, pairs, strict=True)):
        n = seen.get((text, pair), 0)
        seen[(text, pair)] = n + 1
        out[k] = stable_id(dataset, config, split, "content", text, pair or "", n)
    return out


ID_MODES = ("index", "content")


def with_example_ids(
    dataset: Any,
    name: str,
    split: str | None = None,
    by: str = "index",
    *,
    config: str = "default",
    text_column: str = "text",
    pair_column: str | None = None,
    column: str = "example_id",
) -> Any:
    """``dataset`` with a stable ``example_id`` column (docs/design.md), for a user's own data.

    ``name``/``config``/``split`` say where the rows come from (e.g. ``"nyu-mll/glue"``,
    ``"sst2"``, ``"train"``: the ids then equal soi-mlflow's own for that split).
    ``by="index"``: from each row's position, so call it on the split as loaded, before
    any shuffle, filter or select; ``by="content"``: from ``text_column`` (and
    ``pair_column``), for data without a stable order. A ``datasets.DatasetDict`` gets
    ids per split, named by its keys (``split`` must then be None).
    """
    from datasets import Dataset, DatasetDict

    _check_name(name, "name")
    _check_name(config, "config")
    if by not in ID_MODES:
        raise SoiInputError(f"by: expected one of {', '.join(ID_MODES)}, got {by!r}")
    options = {"config": config, "text_column": text_column, "pair_column": pair_column}
    if isinstance(dataset, DatasetDict):
        if split is not None:
            raise SoiInputError(
                f"split={split!r} with a DatasetDict: its keys name the splits; leave split out"
            )
        return DatasetDict(
            {
                key: with_example_ids(part, name, key, by, column=column, **options)
                for key, part in dataset.items()
            }
        )
    if not isinstance(dataset, Dataset):
        raise SoiInputError(
            f"with_example_ids needs a datasets.Dataset or DatasetDict, got "
            f"{type(dataset).__name__} (an IterableDataset has no stable row index: "
            "materialise it, or give ids yourself)"
        )
    _check_name(split, "split")
    if column in dataset.column_names:
        raise SoiInputError(
            f"the dataset already has a column {column!r}; drop it first or pick another column"
        )
    if by == "index":
        ids = index_ids(name, config, split, np.arange(len(dataset), dtype=np.int64))
    else:
        texts = _text_column(dataset, text_column, "text_column")
        pairs = (
            _text_column(dataset, pair_column, "pair_column")
            if pair_column
            else [None] * len(texts)
        )
        ids = content_ids(name, config, split, texts, pairs)
    return dataset.add_column(column, ids.tolist())


def _check_name(value: Any, what: str) -> None:
    if not isinstance(value, str) or not value:
        raise SoiInputError(f"{what}: expected a non-empty string, got {value!r}")


def _text_column(dataset: Any, column: str, what: str) -> list[str]:
    if column not in dataset.column_names:
        raise SoiInputError(
            f"{what}={column!r} is not a column of the dataset; columns: "
            f"{', '.join(dataset.column_names)}"
        )
    values = list(dataset[column])
    bad = next((i for i, v in enumerate(values) if not isinstance(v, str)), None)
    if bad is not None:
        raise SoiInputError(
            f"{what}={column!r}: content ids need text, row {bad} holds {values[bad]!r}"
        )
    return values
