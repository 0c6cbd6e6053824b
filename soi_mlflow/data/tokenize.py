"""Tokenisation with an on-disk cache keyed by content, tokenizer and length.

The cache key is the data set's content fingerprint, a digest of the tokenizer's full
definition and ``max_length``, so a changed vocabulary or text never reuses stale tokens.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from datasets import Dataset

from soi_mlflow.tracking.local import soi_home

MODEL_COLUMNS = ("input_ids", "attention_mask", "token_type_ids")


def cache_dir() -> Path:
    """``$SOI_MLFLOW_CACHE`` or ``~/.cache/soi_mlflow`` (:func:`soi_home`)."""
    return soi_home()


def tokenizer_digest(tokenizer: Any) -> str:
    """A digest of everything that decides how the tokenizer splits and numbers text."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        # truncation and padding are call-time state (set by each call), not the definition
        spec = json.loads(backend.to_str())
        spec.pop("truncation", None)
        spec.pop("padding", None)
        body = json.dumps(spec, sort_keys=True)
    else:
        body = repr(sorted(tokenizer.get_vocab().items()))
    extra = f"{type(tokenizer).__name__}|{tokenizer.padding_side}|{tokenizer.model_max_length}"
    return hashlib.blake2b((body + extra).encode(), digest_size=16).hexdigest()


def tokenize(ds: Dataset, tokenizer: Any, max_length: int, cache: Path | None = None) -> Dataset:
    """Add ``input_ids``/``attention_mask`` (and ``token_type_ids``) to ``ds``, cached."""
    key = hashlib.blake2b(
        f"{ds._fingerprint}|{tokenizer_digest(tokenizer)}|{max_length}".encode(), digest_size=16
    ).hexdigest()
    folder = (cache or cache_dir()) / "tokens"
    folder.mkdir(parents=True, exist_ok=True)
    has_pairs = "text_pair" in ds.column_names

    def encode(batch: dict[str, list]) -> dict[str, list]:
        pairs = batch["text_pair"] if has_pairs else None
        if pairs is not None and all(p is None for p in pairs):
            pairs = None
        if pairs is not None and any(p is None for p in pairs):
            # a mixed batch (pair and single-text members): encode each kind apart
            out: dict[str, list] = {}
            for text, pair in zip(batch["text"], pairs, strict=True):
                enc = tokenizer(text, pair, truncation=True, max_length=max_length)
                for k, v in enc.items():
                    out.setdefault(k, []).append(v)
            return out
        return dict(tokenizer(batch["text"], pairs, truncation=True, max_length=max_length))

    import datasets

    quiet = datasets.is_progress_bar_enabled() and len(ds) < 50_000
    if quiet:  # a bar per small evaluation set is noise; large sets keep theirs
        datasets.disable_progress_bars()
    try:
        return ds.map(
            encode,
            batched=True,
            cache_file_name=str(folder / f"{key}.arrow"),
            load_from_cache_file=True,
            new_fingerprint=key,
            desc="Tokenising",
        )
    finally:
        if quiet:
            datasets.enable_progress_bars()
