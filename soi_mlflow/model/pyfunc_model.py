"""The code of soi-mlflow's MLflow Model ("models from code": MLflow runs this file).

``mlflow.pyfunc.log_model(python_model=<this file>, artifacts={"checkpoint": folder})``
stores this file next to a checkpoint folder (``model/checkpoint.py``: the encoder and
tokenizer as ``save_pretrained`` writes them, heads and label names as safetensors and
JSON). Loading runs this file and reads the weights from safetensors, so nothing is
unpickled. The file imports only torch, transformers, safetensors, pandas and MLflow (and
peft for a model trained with an adapter), not soi-mlflow: a registered model is served
wherever those are installed. An adapter's model holds the adapter and the heads and
names its backbone (``tasks.json``'s ``base_model``), which loading reads from there.

Input: a DataFrame with ``text``, optionally ``text_pair`` and ``task`` (needed when the
model has more than one task head). Output: one row per input row with ``task``, ``pred``
(class index), ``label`` (class name), ``logits`` and ``probs`` of that task's head.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel

BATCH_SIZE = 32


def _present(value: Any) -> bool:
    """Whether a ``text_pair`` cell holds a second text (None, NaN and "" do not)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    return str(value) != ""


def _pool(hidden: Any, mask: Any, how: str, torch: Any) -> Any:
    """``soi_mlflow.model.backbone.pool``, restated: this file imports no soi-mlflow."""
    mask = mask.long()
    rows = torch.arange(hidden.shape[0])
    if how == "last":
        return hidden[rows, (torch.arange(mask.shape[1]) * mask).argmax(dim=1)]
    if how == "mean":
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1)
    return hidden[rows, mask.argmax(dim=1)]


class MultiTaskModel(PythonModel):
    """A shared encoder and one linear head per task, read from a soi-mlflow checkpoint."""

    def load_context(self, context: Any) -> None:
        import torch
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoTokenizer

        folder = Path(context.artifacts["checkpoint"])
        meta = json.loads((folder / "tasks.json").read_text())
        self.tasks: dict[str, list[str]] = meta["tasks"]
        self.pooling = meta.get("pooling", "first")  # older checkpoints: the first token
        adapter = folder / "adapter"  # a peft adapter on a backbone named or saved beside it
        has_base = (folder / "encoder").is_dir()
        base = str(folder / "encoder") if has_base else meta["base_model"]
        self.tokenizer = AutoTokenizer.from_pretrained(str(adapter if adapter.is_dir() else base))
        if has_base:
            try:  # the encoder was saved without a pooler (model/encoder.py)
                encoder = AutoModel.from_pretrained(base, add_pooling_layer=False)
            except TypeError:  # models without a pooler do not take the argument
                encoder = AutoModel.from_pretrained(base)
        else:  # the backbone by name (hub or folder), as training started from it
            encoder = AutoModel.from_pretrained(base)
        if adapter.is_dir():
            from peft import PeftModel

            encoder = PeftModel.from_pretrained(encoder, str(adapter))
        self.encoder = encoder.eval()
        weights = load_file(str(folder / "heads.safetensors"))
        self.heads = {t: (weights[f"{t}.weight"], weights[f"{t}.bias"]) for t in self.tasks}
        self.torch = torch

    def _tasks_of(self, frame: pd.DataFrame) -> list[str]:
        if "task" in frame.columns and frame["task"].notna().all():
            names = [str(t) for t in frame["task"]]
        elif len(self.tasks) == 1:
            names = [next(iter(self.tasks))] * len(frame)
        else:
            raise ValueError(
                f"this model has {len(self.tasks)} task heads ({', '.join(self.tasks)}): give "
                "each row's head in a 'task' column"
            )
        unknown = sorted(set(names) - set(self.tasks))
        if unknown:
            raise ValueError(
                f"unknown task(s) {', '.join(map(repr, unknown))}; this model's tasks: "
                f"{', '.join(self.tasks)}"
            )
        return names

    def _hidden(self, texts: list[str], pairs: list[Any]) -> Any:
        """The pooled final hidden state, as the training module computes it
        (``soi_mlflow/model/backbone.py``: first or last real token, or their mean)."""
        rows = [
            self.tokenizer(
                t, p if _present(p) else None, truncation=True
            )  # up to the tokenizer's model_max_length: the run's max_length
            for t, p in zip(texts, pairs, strict=True)
        ]
        batch = self.tokenizer.pad(rows, return_tensors="pt")
        inputs = {
            k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch
        }
        hidden = self.encoder(**inputs).last_hidden_state
        return _pool(hidden, batch["attention_mask"], self.pooling, self.torch).float()

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        frame = pd.DataFrame(model_input).reset_index(drop=True)
        if "text" not in frame.columns:
            raise ValueError("the input needs a 'text' column")
        tasks = self._tasks_of(frame)
        texts = [str(t) for t in frame["text"]]
        pairs = list(frame["text_pair"]) if "text_pair" in frame.columns else [None] * len(frame)
        out: list[dict[str, Any]] = []
        torch = self.torch
        with torch.inference_mode():
            for start in range(0, len(frame), BATCH_SIZE):
                end = start + BATCH_SIZE
                hidden = self._hidden(texts[start:end], pairs[start:end])
                for row, task in zip(hidden, tasks[start:end], strict=True):
                    weight, bias = self.heads[task]
                    logits = torch.nn.functional.linear(row, weight, bias)
                    probs = torch.softmax(logits, dim=-1)
                    pred = int(torch.argmax(logits))
                    out.append(
                        {
                            "task": task,
                            "pred": pred,
                            "label": self.tasks[task][pred],
                            "logits": logits.tolist(),
                            "probs": probs.tolist(),
                        }
                    )
        return pd.DataFrame(out, columns=["task", "pred", "label", "logits", "probs"])


set_model(MultiTaskModel())
