"""The module and tokenizer a training starts from: a fresh backbone (``tiny``, a hub
name or a folder) or a checkpoint, with its pad token, pooling, adapters and heads.

A checkpoint holds either the whole backbone (``encoder/``) or, under ``--peft``, the
adapter (``adapter/``) and the name of the backbone it adapts (``tasks.json``'s
``base_model``), plus ``encoder/`` when no name reloads that backbone (``tiny``, or a
backbone that was itself fine-tuned): ``model/checkpoint.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from soi_mlflow.data.mixture import Mixture
from soi_mlflow.model.adapters import (
    ADAPTER,
    LoraSettings,
    add_lora,
    is_adapted,
    load_adapter,
    parameter_counts,
)
from soi_mlflow.model.backbone import ensure_pad_token, resolve_pooling
from soi_mlflow.training.config import TrainConfig


def _base_name(config: TrainConfig) -> str | None:
    """The name that reloads a fresh backbone: a hub name or a folder's absolute path;
    None for ``tiny`` (built from the training texts)."""
    if config.model == "tiny":
        return None
    path = Path(config.model)
    return str(path.resolve()) if path.is_dir() else config.model


def _from_checkpoint(
    config: TrainConfig, init: Path, meta: dict[str, Any]
) -> tuple[Any, Any, str | None]:
    """Backbone, tokenizer and base name from a checkpoint and its ``tasks.json`` (adapter
    trainable under ``--peft``, merged into the weights otherwise)."""
    from soi_mlflow.model.encoder import build_pretrained  # deferred: torch, transformers

    if not (init / ADAPTER).is_dir():
        encoder, tokenizer = build_pretrained(str(init / "encoder"), config.max_length)
        return encoder, tokenizer, None
    with_base = (init / "encoder").is_dir()
    base = str(init / "encoder") if with_base else meta["base_model"]
    from transformers import AutoTokenizer

    encoder, _ = build_pretrained(base, config.max_length)
    # the run's tokenizer (its pad token, its max length) is saved beside the adapter
    tokenizer = AutoTokenizer.from_pretrained(str(init / ADAPTER))
    trainable = config.peft is not None
    encoder = load_adapter(encoder, init / ADAPTER, trainable)
    return encoder, tokenizer, None if with_base or not trainable else meta["base_model"]


def build_module(config: TrainConfig, mixture: Mixture, init: Path | None) -> tuple[Any, Any]:
    """The LightningModule and tokenizer for ``config`` (``init``: a local checkpoint)."""
    # deferred: torch, transformers
    from soi_mlflow.model.encoder import build_encoder, enable_checkpointing
    from soi_mlflow.model.module import MultiTaskClassifier  # deferred: lightning, torch

    saved: dict[str, Any] = {}  # the checkpoint's tasks.json
    if init is not None:
        saved = json.loads((init / "tasks.json").read_text())
        encoder, tokenizer, base = _from_checkpoint(config, init, saved)
    else:
        texts = list(mixture.train["text"]) + [t for t in mixture.train["text_pair"] if t]
        encoder, tokenizer = build_encoder(config.model, texts, config.max_length, config.seed)
        base = _base_name(config)
    pad_token = ensure_pad_token(tokenizer, encoder)
    if config.gradient_checkpointing:
        enable_checkpointing(encoder)
    if config.peft is not None and not is_adapted(encoder):
        settings = LoraSettings(
            config.lora_r, config.lora_alpha, config.lora_dropout, config.lora_targets
        )
        encoder = add_lora(encoder, settings)
    module = MultiTaskClassifier(
        encoder,
        [len(names) for names in mixture.tasks.values()],
        lr=config.learning_rate,
        weight_decay=config.weight_decay,
        warmup_ratio=config.warmup_ratio,
        pooling=resolve_pooling(config.pooling or saved.get("pooling"), encoder.config),
    )
    module.base_model = base if is_adapted(encoder) else None  # what the adapter adapts
    module.backbone_params = {
        "pooling": module.hparams.pooling,
        "pad_token": pad_token,
        "effective_batch_size": config.batch_size * config.grad_accum * config.devices,
        **(parameter_counts(module) if is_adapted(encoder) else {}),
        "base_model": module.base_model,
    }
    if init is not None:
        from soi_mlflow.model.checkpoint import load_heads  # deferred: torch

        load_heads(module, mixture.tasks, init)
    return module, tokenizer
