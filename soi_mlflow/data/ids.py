"""Stable example identity (DESIGN 2.7).

An ``example_id`` is a signed int64 taken from a BLAKE2b digest of where the example comes
from: (dataset, config, split, original row index), or its content when there is no index.
It does not depend on the process, the run, the mixture, ``max_examples`` or the machine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import numpy as np

_SEP = "\x1f"


def stable_id(*parts: object) -> int:
    """One int64 id from the parts that locate an example."""
    key = _SEP.join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little", signed=True)


def index_ids(dataset: str, config: str, split: str, indices: Iterable[int]) -> np.ndarray:
    """Ids for rows known by their index in the original split."""
    prefix = _SEP.join((dataset, config, split, "")).encode("utf-8")
    out = [
        int.from_bytes(
            hashlib.blake2b(prefix + str(int(i)).encode(), digest_size=8).digest(),
            "little",
            signed=True,
        )
        for i in indices
    ]
    return np.asarray(out, dtype=np.int64)


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
