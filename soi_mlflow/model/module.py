"""The LightningModule: a shared encoder and one classification head per task.

The heads read the encoder's pooled hidden state (``model/backbone.py``: ``first`` for an
encoder, ``last`` real token for a decoder-only model, or ``mean``), in float32 whatever
the training precision, so that the logits the trace records are float32 too.

Members of the ``source`` and ``lang`` axes share their task's head. Each step returns,
beside the loss, the logits it already computed (each row's own head), which the trace
callback (``soi_mlflow.lightning``) records, so tracing needs no extra forward pass.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn

from soi_mlflow.model.backbone import pool
from soi_mlflow.model.encoder import hidden_size


class MultiTaskClassifier(pl.LightningModule):
    """Shared encoder + a linear head per task; AdamW with linear warmup and decay."""

    def __init__(
        self,
        encoder: nn.Module,
        task_sizes: list[int],
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        warmup_ratio: float = 0.1,
        dropout: float = 0.1,
        pooling: str = "first",
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["encoder"])
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        width = hidden_size(encoder)
        self.heads = nn.ModuleList(nn.Linear(width, n) for n in task_sizes)

    def encode(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The pooled final hidden state (``hparams.pooling``), one float32 row per example."""
        inputs = {
            k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch
        }
        hidden = self.encoder(**inputs).last_hidden_state
        return pool(hidden, batch.get("attention_mask"), self.hparams.pooling).float()

    def per_example(
        self, hidden: torch.Tensor, batch: dict[str, torch.Tensor], with_trace: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-example losses and, if asked, each row's logits from its own task's head,
        padded with -inf to the widest head (what the trace records).

        Every head runs on the whole batch, so all parameters take part in every step's
        graph (DDP requires it); each example's loss uses its own task's head. Rows are
        chosen with ``torch.where``, not boolean indexing: no host sync in the step. The
        heads run outside autocast, on the float32 rows :meth:`encode` returns.
        """
        labels, tasks = batch["label"], batch["task_idx"]
        losses = hidden.new_zeros(len(labels))
        chosen_logits = None
        if with_trace:
            width = max(head.out_features for head in self.heads)
            chosen_logits = hidden.new_full((len(labels), width), float("-inf"))
        with torch.autocast(hidden.device.type, enabled=False):  # float32 heads, logits
            for t, head in enumerate(self.heads):
                logits = head(hidden)
                mask = tasks == t
                gold = torch.where(mask, labels, 0)  # other tasks' rows: any valid class
                own = F.cross_entropy(logits, gold, reduction="none")
                losses = torch.where(mask, own, losses)
                if chosen_logits is not None:
                    n = head.out_features
                    chosen_logits[:, :n] = torch.where(
                        mask[:, None], logits.detach(), chosen_logits[:, :n]
                    )
        return losses, chosen_logits

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> Any:
        hidden = self.dropout(self.encode(batch))
        losses, logits = self.per_example(hidden, batch, with_trace=True)
        loss = losses.mean()
        self.log("loss", loss, prog_bar=True, logger=False, batch_size=len(losses))
        return {"loss": loss, "logits": logits}

    def validation_step(
        self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> Any:
        _, logits = self.per_example(self.encode(batch), batch, with_trace=True)
        return {"logits": logits}

    def configure_optimizers(self) -> Any:
        from transformers import get_linear_schedule_with_warmup

        no_decay = ("bias", "LayerNorm.weight", "LayerNorm.bias")
        trained = [(n, p) for n, p in self.named_parameters() if p.requires_grad]  # adapters
        groups = [
            {
                "params": [p for n, p in trained if not n.endswith(no_decay)],
                "weight_decay": self.hparams.weight_decay,
            },
            {
                "params": [p for n, p in trained if n.endswith(no_decay)],
                "weight_decay": 0.0,
            },
        ]
        optimizer = torch.optim.AdamW(groups, lr=self.hparams.lr)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = get_linear_schedule_with_warmup(
            optimizer, int(self.hparams.warmup_ratio * total), total
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
