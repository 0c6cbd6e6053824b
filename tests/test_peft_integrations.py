"""The Trainer and Lightning adapters with a ``peft``-wrapped decoder classifier: a tiny
random GPT-2 ``AutoModelForSequenceClassification`` (pad-token rule set, as decoder
classifiers need) with LoRA, traced through ``TracingTrainer`` and through
``TraceCallback`` on a user's own LightningModule. Real MLflow (SQLite)."""

from __future__ import annotations

import lightning.pytorch as pl
import mlflow
import numpy as np
import pytest
import torch
from decoderhelp import bpe_tokenizer
from mlflow import MlflowClient
from torch.utils.data import DataLoader
from tracehelp import load_trace, trace_files
from transformers import DataCollatorWithPadding, TrainingArguments

from soi_mlflow.data import load_member

peft = pytest.importorskip("peft")
pytestmark = pytest.mark.e2e
N_TRAIN, N_VAL = 48, 24


@pytest.fixture(scope="module")
def data():
    """Books splits with ``example_id``, tokenized by a BPE without a pad token, which
    then gets EOS as its pad token (what a user of a decoder LM does)."""
    splits = {
        "train": load_member("builtin", "books", "train", max_examples=N_TRAIN),
        "validation": load_member("builtin", "books", "validation", max_examples=N_VAL),
    }
    tok = bpe_tokenizer(splits["train"]["text"], vocab_size=400)
    assert tok.pad_token is None
    tok.pad_token = tok.eos_token
    encoded = {
        k: v.map(lambda b: tok(b["text"], truncation=True, max_length=32), batched=True)
        for k, v in splits.items()
    }
    return encoded, tok


def lora_classifier(tok, names: list[str]):
    """GPT-2 for sequence classification, ``pad_token_id`` set, LoRA on ``c_attn``."""
    from transformers import AutoModelForSequenceClassification, GPT2Config

    config = GPT2Config(
        vocab_size=len(tok),
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=64,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        num_labels=len(names),
        id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)},
    )
    torch.manual_seed(0)
    base = AutoModelForSequenceClassification.from_config(config)
    lora = peft.LoraConfig(
        task_type="SEQ_CLS", r=4, lora_alpha=8, target_modules=["c_attn"], fan_in_fan_out=True
    )
    model = peft.get_peft_model(base, lora)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or ".score." in n for n in trainable)
    return model


def _check_traces(uri: str, run_id: str, splits, epochs: int) -> None:
    """Every example once per epoch in each split, p_gold float32 probabilities."""
    for split, ds in splits.items():
        files = trace_files(uri, run_id, split)
        assert [f.rsplit("/", 1)[1] for f in files] == [
            f"epoch={e:03d}.parquet" for e in range(epochs)
        ]
        for epoch, path in enumerate(files):
            trace, _ = load_trace(uri, run_id, path)
            assert sorted(trace["example_id"]) == sorted(ds["example_id"])
            assert (trace["epoch"] == epoch).all()
            assert trace["p_gold"].dtype == np.float32
            assert trace["p_gold"].between(0, 1).all()


def test_tracing_trainer_with_a_peft_decoder_classifier(data, store, tmp_path) -> None:
    from soi_mlflow.transformers import TraceCallback, TracingTrainer

    splits, tok = data
    names = splits["train"].features["label"].names
    model = lora_classifier(tok, names)
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        num_train_epochs=2,
        per_device_train_batch_size=16,
        per_device_eval_batch_size=32,
        learning_rate=5e-3,
        eval_strategy="epoch",
        save_strategy="no",
        logging_strategy="epoch",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    trainer = TracingTrainer(
        model=model,
        args=args,
        train_dataset=splits["train"],
        eval_dataset=splits["validation"],
        data_collator=DataCollatorWithPadding(tok),
        callbacks=[TraceCallback(tracking_uri=store, analyze=False)],
    )
    trainer.train()
    run_id = trainer.trace_run_id
    assert MlflowClient(store).get_run(run_id).info.status == "FINISHED"
    assert mlflow.active_run() is None
    _check_traces(store, run_id, splits, 2)
    # the last validation trace holds the final peft model's own predictions
    trace, _ = load_trace(store, run_id, trace_files(store, run_id, "validation")[-1])
    val = splits["validation"]
    batch = tok.pad({"input_ids": val["input_ids"]}, return_tensors="pt")
    model.eval()
    with torch.no_grad():
        probs = model(**batch).logits.float().softmax(-1).numpy()
    gold = np.asarray(val["label"])
    by_id = trace.set_index("example_id").loc[list(val["example_id"])]
    assert (by_id["pred"].to_numpy() == probs.argmax(1)).all()
    np.testing.assert_allclose(by_id["p_gold"], probs[np.arange(len(gold)), gold], rtol=1e-3)


class PeftModule(pl.LightningModule):
    """A user's module around a peft model: returns the logits beside the loss."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def _step(self, batch):
        out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        loss = torch.nn.functional.cross_entropy(out.logits.float(), batch["labels"])
        return {"loss": loss, "logits": out.logits}

    def training_step(self, batch, batch_idx):
        return self._step(batch)

    def validation_step(self, batch, batch_idx):
        return self._step(batch)

    def configure_optimizers(self):
        return torch.optim.AdamW([p for p in self.parameters() if p.requires_grad], lr=5e-3)


def test_lightning_trace_callback_with_a_user_module_around_a_peft_model(data, store) -> None:
    from soi_mlflow.lightning import TraceCallback

    splits, tok = data
    names = splits["train"].features["label"].names
    collate = DataCollatorWithPadding(tok)

    def loader(ds, shuffle: bool) -> DataLoader:
        keep = ds.select_columns(["input_ids", "attention_mask", "label", "example_id"])
        return DataLoader(list(keep), batch_size=16, shuffle=shuffle, collate_fn=collate)

    callback = TraceCallback(label_names=names, tracking_uri=store, analyze=False)
    pl.seed_everything(0, verbose=False)
    trainer = pl.Trainer(
        max_epochs=2,
        logger=False,
        callbacks=[callback],
        precision="bf16-mixed",  # the traced probabilities stay float32
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        accelerator="cpu",
    )
    module = PeftModule(lora_classifier(tok, names))
    trainer.fit(module, loader(splits["train"], True), loader(splits["validation"], False))
    run_id = callback.run_id_resolved
    assert MlflowClient(store).get_run(run_id).info.status == "FINISHED"
    _check_traces(store, run_id, splits, 2)
