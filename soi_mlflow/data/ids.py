"""Stable example identity (DESIGN 2.7).

An ``example_id`` is a signed int64 that depends only on where the example comes from,
never on the process, the run, the mixture, ``max_examples`` or the machine:

- by index (the default): the high 32 bits are a BLAKE2b digest of (dataset, config,
  split) and the low 32 bits the row's index in that original split. Ids of one split
  are then nearly consecutive, which makes trace files small (delta encoding stores a
  sorted id column in about a bit per row);
- by content (``id_from: content``, for data without a stable order): a 64-bit digest of
  the text (and text pair) with its occurrence number among equal texts.

Two different (dataset, config, split) triples share a 32-bit prefix with probability
2^-32; a mixture checks that its ids are unique and says so if they are not.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

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
