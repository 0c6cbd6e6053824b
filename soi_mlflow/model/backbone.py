"""What a backbone needs to classify: its pooling, a pad token, and the models it refuses.

Encoders read the first token (``[CLS]``), which attends to the whole text. A
decoder-only model (GPT-2, Llama, Qwen, Mistral, Gemma, SmolLM, ...) is causal: its first
token has seen only itself, so it pools the last real (non-pad) token, whatever side the
tokenizer pads on. ``mean`` averages the real tokens. Encoder-decoder models (T5, BART)
are refused: their ``AutoModel`` needs decoder inputs, and a user wanting T5's encoder
can save ``T5EncoderModel`` to a folder and pass that. Light: torch is imported where a
tensor is pooled, so the settings' checks can name ``POOLINGS``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from soi_mlflow.errors import SoiInputError

if TYPE_CHECKING:
    import torch

POOLINGS = ("first", "last", "mean")


def is_decoder_only(config: Any) -> bool:
    """Whether ``config`` is a causal language model's (not an encoder's, not seq2seq)."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    if getattr(config, "is_encoder_decoder", False):
        return False
    kind = getattr(config, "model_type", "")
    if kind in MODEL_FOR_MASKED_LM_MAPPING_NAMES:  # BERT-likes also have a causal-LM head
        return False
    return kind in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or bool(getattr(config, "is_decoder", False))


def check_architecture(config: Any, name: str) -> None:
    """Refuse an encoder-decoder model before anything is loaded or opened."""
    if getattr(config, "is_encoder_decoder", False):
        raise SoiInputError(
            f"model: {name!r} is an encoder-decoder model ({config.model_type}); soi-mlflow "
            "classifies with an encoder or a decoder-only model. For its encoder alone, "
            "save it with e.g. T5EncoderModel.from_pretrained(...).save_pretrained(DIR) "
            "and pass --model DIR"
        )


def default_pooling(config: Any) -> str:
    """``last`` for a decoder-only model, ``first`` for an encoder."""
    return "last" if is_decoder_only(config) else "first"


def resolve_pooling(pooling: str | None, config: Any) -> str:
    if pooling is None:
        return default_pooling(config)
    if pooling not in POOLINGS:
        raise SoiInputError(f"pooling: expected one of {', '.join(POOLINGS)}, got {pooling!r}")
    return pooling


def ensure_pad_token(tokenizer: Any, encoder: Any | None = None) -> str:
    """Give a tokenizer without a pad token its EOS token as pad (the vocabulary is
    unchanged) and set the model config's ``pad_token_id`` to match; returns what the pad
    token is, for the run's params (``eos:<token>`` when it was set here)."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise SoiInputError(
                "model: its tokenizer has neither a pad token nor an EOS token to pad with; "
                "save the tokenizer with a pad_token"
            )
        tokenizer.pad_token = tokenizer.eos_token
        chosen = f"eos:{tokenizer.eos_token}"
    else:
        chosen = str(tokenizer.pad_token)
    config = getattr(encoder, "config", None)
    if config is not None and getattr(config, "pad_token_id", None) is None:
        config.pad_token_id = tokenizer.pad_token_id
    return chosen


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None, how: str) -> torch.Tensor:
    """One row per example from ``hidden`` (batch, tokens, width): the first or last real
    token (by ``attention_mask``, so left and right padding give the same rows), or the
    mean of the real tokens."""
    import torch

    if attention_mask is None:
        attention_mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
    mask = attention_mask.to(hidden.device).long()
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    if how == "first":
        return hidden[rows, mask.argmax(dim=1)]  # argmax: the first 1
    if how == "last":
        positions = torch.arange(mask.shape[1], device=hidden.device)
        return hidden[rows, (positions * mask).argmax(dim=1)]
    if how == "mean":
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1)
    raise SoiInputError(f"pooling: expected one of {', '.join(POOLINGS)}, got {how!r}")
