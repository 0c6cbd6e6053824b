"""Encoders: a pretrained ``transformers`` model by hub name or local path, or ``tiny``.

``tiny`` is a small randomly initialised BERT (hidden 64, 2 layers) with a WordPiece
tokenizer trained offline on the training texts: the default, fast on two CPU cores.
Encoders are built without a pooler, whose weights no head uses (DDP refuses unused
parameters); heads read the pooled hidden state (``model/backbone.py``: the first token of
an encoder, the last real token of a decoder-only model). Encoder-decoder models are
refused before their weights load.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from soi_mlflow.data.hub import hub_access
from soi_mlflow.errors import SoiInputError
from soi_mlflow.model.backbone import check_architecture, is_decoder_only
from soi_mlflow.model.tokenizer import train_wordpiece

TINY = "tiny"


@dataclass(frozen=True)
class TinyConfig:
    """Size of the ``tiny`` encoder (STACK-NOTES: ~1,100 examples/s on 2 cores)."""

    hidden: int = 64
    layers: int = 2
    heads: int = 2
    intermediate: int = 128
    vocab_size: int = 2000


def build_tiny(
    texts: Sequence[str], max_length: int, seed: int, size: TinyConfig = TinyConfig()
) -> tuple[nn.Module, Any]:
    """A seeded random BERT and a WordPiece tokenizer trained on ``texts``."""
    from transformers import BertConfig, BertModel

    tokenizer = train_wordpiece(texts, vocab_size=size.vocab_size, max_length=max_length)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=size.hidden,
        num_hidden_layers=size.layers,
        num_attention_heads=size.heads,
        intermediate_size=size.intermediate,
        max_position_embeddings=max(max_length, 32),
        type_vocab_size=2,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        encoder = BertModel(config, add_pooling_layer=False)
    return encoder, tokenizer


def build_pretrained(name: str, max_length: int) -> tuple[nn.Module, Any]:
    """A pretrained encoder and its tokenizer, from the hub or a local folder."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    local = Path(name).is_dir()
    if not local and (Path(name).exists() or name.startswith((".", "/"))):
        raise SoiInputError(f"model path {name!r} is not a folder with a transformers model")
    hint = (
        "Download the model where the hub can be reached (e.g. `huggingface-cli download "
        f"{name} --local-dir DIR`) and pass --model DIR, or use --model tiny."
    )

    def load() -> tuple[nn.Module, Any]:
        config = AutoConfig.from_pretrained(name)
        check_architecture(config, name)
        tokenizer = AutoTokenizer.from_pretrained(name, model_max_length=max_length)
        if is_decoder_only(config):  # no pooler; an unknown argument would land in its config
            config.use_cache = False  # never generates: no key/value cache in the forward
            encoder = AutoModel.from_pretrained(name, config=config)
        else:
            try:
                encoder = AutoModel.from_pretrained(name, add_pooling_layer=False)
            except TypeError:  # models without a pooler do not take the argument
                encoder = AutoModel.from_pretrained(name)
        # from_pretrained returns eval mode, and Lightning keeps a module's mode: without
        # this, a pretrained encoder would fine-tune with its dropout switched off
        return encoder.train(), tokenizer

    if local:
        return load()
    with hub_access(f"model {name!r}", hint):
        return load()


def build_encoder(
    model: str, texts: Sequence[str], max_length: int, seed: int
) -> tuple[nn.Module, Any]:
    """``tiny`` or a pretrained model; returns (encoder, tokenizer)."""
    if model == TINY:
        return build_tiny(texts, max_length, seed)
    return build_pretrained(model, max_length)


def enable_checkpointing(encoder: nn.Module) -> None:
    """Gradient checkpointing of a ``transformers`` backbone (non-reentrant: it needs no
    input that requires grad, so frozen embeddings under an adapter work too)."""
    if not getattr(encoder, "supports_gradient_checkpointing", False):
        raise SoiInputError(f"gradient-checkpointing: {type(encoder).__name__} does not support it")
    encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def hidden_size(encoder: nn.Module) -> int:
    return int(encoder.config.hidden_size)
