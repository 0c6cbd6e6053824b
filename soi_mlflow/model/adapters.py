"""Parameter-efficient adapters through ``peft`` (LoRA): added to a backbone, read back
from a checkpoint, counted.

Under ``--peft lora`` only the adapter's weights and the task heads train; the backbone
is frozen. ``--lora-targets auto`` takes ``peft``'s own target modules for the
architecture (``c_attn`` for GPT-2, ``q_proj,v_proj`` for Llama and Qwen2, ``query,value``
for BERT). ``peft`` is the optional extra ``soi-mlflow[peft]``, imported only here.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from soi_mlflow.errors import SoiInputError

PEFT_METHODS = ("lora",)
ADAPTER = "adapter"  # the checkpoint's adapter folder


@dataclass(frozen=True)
class LoraSettings:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    targets: str = "auto"


def _peft() -> Any:
    try:
        import peft
    except ImportError:
        raise SoiInputError(
            "peft: adapters need the peft package: pip install 'soi-mlflow[peft]'"
        ) from None
    return peft


def target_modules(config: Any, targets: str) -> list[str]:
    """The modules LoRA adapts: ``targets`` (comma-separated names) or, for ``auto``,
    ``peft``'s defaults for the model's architecture."""
    if targets != "auto":
        return [t.strip() for t in targets.split(",") if t.strip()]
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

    found = TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.get(config.model_type)
    if not found:
        raise SoiInputError(
            f"lora-targets: no default target modules for {config.model_type!r} models; "
            "name them, e.g. --lora-targets q_proj,v_proj"
        )
    return list(found)


def add_lora(encoder: Any, settings: LoraSettings) -> Any:
    """``encoder`` wrapped with fresh LoRA adapters (its own weights frozen)."""
    peft = _peft()
    targets = target_modules(encoder.config, settings.targets)
    config = peft.LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=targets,
    )
    try:
        return peft.get_peft_model(encoder, config)
    except ValueError as exc:  # a named module the model does not have
        raise SoiInputError(f"lora-targets: {exc}") from None


def is_adapted(encoder: Any) -> bool:
    return type(encoder).__module__.startswith("peft")


def load_adapter(encoder: Any, folder: Path, trainable: bool) -> Any:
    """``encoder`` with the adapter saved in ``folder``: trainable, or merged into the
    weights (full fine-tuning continues from the adapted model: every weight trainable,
    in training mode, which peft's frozen, eval-mode inference load does not leave)."""
    peft = _peft()
    adapted = peft.PeftModel.from_pretrained(encoder, str(folder), is_trainable=trainable)
    if trainable:
        return adapted
    return adapted.merge_and_unload().requires_grad_(True).train()


def save_adapted(encoder: Any, folder: Path, with_base: bool) -> None:
    """The adapter in ``folder/adapter``; with ``with_base`` the frozen backbone too, as
    a plain ``transformers`` model in ``folder/encoder`` (a base no name reloads)."""
    encoder.save_pretrained(folder / ADAPTER, safe_serialization=True)
    if with_base:
        base = copy.deepcopy(encoder).unload()  # the adapter removed from a copy
        base.save_pretrained(folder / "encoder", safe_serialization=True)


def parameter_counts(module: Any) -> dict[str, Any]:
    """Trainable and total parameters of ``module``, and the trainable share."""
    total = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return {
        "trainable_params": trainable,
        "total_params": total,
        "trainable_share": round(trainable / max(total, 1), 6),
    }
