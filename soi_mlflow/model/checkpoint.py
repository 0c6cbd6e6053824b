"""Checkpoints as safetensors and JSON (never pickle): the encoder in ``transformers``'
format with its tokenizer, the heads by task name, and the tasks' label names.

Layout of a checkpoint folder (logged to a run as ``checkpoint/``)::

    encoder/             save_pretrained(): config.json, model.safetensors, tokenizer files
                         (under --peft: the frozen backbone, only when no name reloads it)
    adapter/             under --peft: the adapter (peft's save_pretrained) and the tokenizer
    heads.safetensors    "<task>.weight", "<task>.bias" for every task head
    tasks.json           {"tasks": {task: [label names]}, "pooling": first|last|mean,
                          "base_model": the backbone an adapter-only checkpoint adapts}
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from soi_mlflow.errors import SoiInputError
from soi_mlflow.model.adapters import ADAPTER, is_adapted, save_adapted


def save_checkpoint(
    module: Any, tokenizer: Any, tasks: dict[str, tuple[str, ...]], folder: Path
) -> Path:
    folder = Path(folder)
    base = getattr(module, "base_model", None)
    meta: dict[str, Any] = {"pooling": module.hparams.pooling}
    if is_adapted(module.encoder):
        save_adapted(module.encoder, folder, with_base=base is None)
        _definition(tokenizer).save_pretrained(folder / ADAPTER)
        meta["base_model"] = base
    else:
        module.encoder.save_pretrained(folder / "encoder", safe_serialization=True)
        _definition(tokenizer).save_pretrained(folder / "encoder")
    heads = {}
    for task, head in zip(tasks, module.heads, strict=True):
        for name, tensor in head.state_dict().items():
            heads[f"{task}.{name}"] = tensor.detach().cpu().contiguous()
    save_file(heads, str(folder / "heads.safetensors"))
    meta = {"tasks": {t: list(n) for t, n in tasks.items()}, **meta}
    (folder / "tasks.json").write_text(json.dumps(meta))
    return folder


def _definition(tokenizer: Any) -> Any:
    """A copy of ``tokenizer`` without the truncation and padding its last call left on
    its fast backend: that call-time state (set when it tokenised, absent when the tokens
    came from the cache) would make the same training's checkpoint differ, and with it
    the training key of every run started from it (``training/key.py``)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or (backend.truncation is None and backend.padding is None):
        return tokenizer
    clean = copy.deepcopy(tokenizer)
    clean.backend_tokenizer.no_truncation()
    clean.backend_tokenizer.no_padding()
    return clean


def check_checkpoint(folder: Path) -> dict[str, list[str]]:
    """The checkpoint's tasks; a clear error if the folder is not a checkpoint."""
    folder = Path(folder)
    adapted = (folder / ADAPTER).is_dir()
    weights = f"{ADAPTER}/adapter_config.json" if adapted else "encoder/config.json"
    missing = [p for p in (weights, "heads.safetensors", "tasks.json") if not (folder / p).exists()]
    if missing:
        raise SoiInputError(
            f"{str(folder)!r} is not a soi-mlflow checkpoint (missing {', '.join(missing)})"
        )
    return json.loads((folder / "tasks.json").read_text())["tasks"]


def load_heads(module: Any, tasks: dict[str, tuple[str, ...]], folder: Path) -> list[str]:
    """Copy the checkpoint's head of every task the module shares with it (same labels).

    Returns the tasks loaded; other heads keep their fresh initialisation."""
    saved = check_checkpoint(folder)
    weights = load_file(str(Path(folder) / "heads.safetensors"))
    loaded = []
    for task, head in zip(tasks, module.heads, strict=True):
        if list(tasks[task]) == saved.get(task):
            head.load_state_dict({k: weights[f"{task}.{k}"] for k in head.state_dict()})
            loaded.append(task)
    return loaded
