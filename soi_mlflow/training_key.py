"""The training key: one digest of every setting that shapes a run's training and scores.

A study that reuses finished runs (``transfer --reuse``) must not let a run trained on
other data or settings stand in for the one it needs: a learning-curve child trained on
50 examples of a member is no full-data baseline. Every run ``train`` logs carries its key
as the tag ``soi.training_key``; a run is reused only when its key equals the key of the
run asked for. Runs logged before the key existed carry none and are never reused.

In the key: the suite (a YAML file by its content), the data folder, axis, members in
their order, sampling (and temperature), ``max_examples`` and its per-member overrides,
the data seed, the evaluation sizes, the exact training subset (``train_ids``), epochs,
seed, model, capture, batch size, length, learning rate, weight decay, warm-up, devices,
strategy, affinity measurement (it runs extra forward passes) and the starting weights
(a checkpoint folder by its content). Not in it: OOD members (evaluated, never trained on),
the accelerator, and what only records (experiment, names, tags, progress, checkpoints).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from soi_mlflow.training import TrainConfig

TRAINING_KEY_TAG = "soi.training_key"


def _digest_bytes(chunks) -> str:
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()


def folder_digest(folder: str | Path) -> str:
    """SHA-256 over a folder's files (relative paths and contents, in sorted order)."""
    root = Path(folder)
    files = sorted(p for p in root.rglob("*") if p.is_file())

    def chunks():
        for path in files:
            yield path.relative_to(root).as_posix().encode() + b"\0"
            yield path.read_bytes()

    return _digest_bytes(chunks())


def _suite(suite: Any) -> Any:
    """A suite by name (built-in and presets), by content (a YAML file), or by its
    definition (a Python-built ``SuiteSpec``)."""
    if isinstance(suite, (str, Path)):
        path = Path(suite)
        if path.is_file():
            return {"file": _digest_bytes([path.read_bytes()])}
        return str(suite)
    return {"name": suite.name, "definition": repr(suite)}


def training_settings(config: TrainConfig) -> dict[str, Any]:
    """The settings the key is made of (JSON-able)."""
    spec = config.mixture
    ids = spec.train_ids
    return {
        "suite": _suite(spec.suite),
        "data_dir": None if spec.data_dir is None else str(spec.data_dir),
        "axis": spec.axis,
        "members": list(spec.members),
        "sampling": spec.sampling,
        "temperature": spec.temperature if spec.sampling == "temperature" else None,
        "max_examples": spec.max_examples,
        "member_max_examples": sorted([m, n] for m, n in spec.member_max_examples),
        "data_seed": spec.data_seed,
        "eval_max_examples": spec.eval_max_examples,
        "train_ids": None
        if ids is None
        else _digest_bytes([",".join(map(str, sorted(ids))).encode()]),
        "epochs": config.epochs,
        "seed": config.seed,
        "model": config.model,
        "capture": config.capture,
        "batch_size": config.batch_size,
        "max_length": config.max_length,
        "lr": config.learning_rate,
        "weight_decay": config.weight_decay,
        "warmup_ratio": config.warmup_ratio,
        "devices": config.devices,
        "strategy": config.strategy,
        "affinity_every": config.affinity_every,
        "affinity_step": config.affinity_step if config.affinity_every is not None else None,
        "init_from": None if config.init_from is None else _start(config.init_from),
    }


def _start(init_from: str) -> str:
    path = Path(init_from)
    return folder_digest(path) if path.is_dir() else init_from


def training_key(config: TrainConfig) -> str:
    """The digest of :func:`training_settings` (64 hex digits)."""
    text = json.dumps(training_settings(config), sort_keys=True, default=str)
    return _digest_bytes([text.encode()])
