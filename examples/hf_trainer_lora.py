"""Fine-tune a decoder LM with LoRA (peft) in a transformers.Trainer; soi-mlflow traces it.

The soi-mlflow lines are those of ``hf_trainer.py``: ``with_example_ids`` and
``TracingTrainer``. What a decoder LM adds: its tokenizer has no pad token (EOS pads, as
transformers recommends), the classifier's ``pad_token_id`` must be set (it pools the last
non-pad token), and ``peft.get_peft_model`` wraps it (adapter and head trained).

    python examples/hf_trainer_lora.py                       # a tiny GPT-2, built offline
    python examples/hf_trainer_lora.py --model Qwen/Qwen2.5-0.5B --bf16   # a real one (GPU)

Without ``--model`` it builds a tiny random GPT-2 and a byte-level BPE tokenizer trained on
the example's own texts, so it runs offline in seconds (its accuracy means nothing).
"""

import argparse
import os

import peft
from datasets import load_dataset
from make_data import EPOCHS, MAX_LENGTH, make_data
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    GPT2Config,
    PreTrainedTokenizerFast,
    TrainingArguments,
)

from soi_mlflow.data import with_example_ids
from soi_mlflow.transformers import TracingTrainer

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--model", help="a decoder LM's name or folder (default: a tiny GPT-2)")
parser.add_argument("--lora-r", type=int, default=8)
parser.add_argument("--bf16", action="store_true", help="bf16 mixed precision (GPU)")
cli = parser.parse_args()

os.environ.setdefault("MLFLOW_EXPERIMENT_NAME", "soi-examples")
data = load_dataset("csv", data_files=make_data()).class_encode_column("label")
data = with_example_ids(data, name="example-reviews")  # one id per row, stable across runs
names = data["train"].features["label"].names


def tiny_tokenizer(texts: list[str]) -> PreTrainedTokenizerFast:
    """A GPT-2-style byte-level BPE trained on ``texts``: an EOS token, no pad token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=500,
            special_tokens=["<|endoftext|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>")


if cli.model:
    tokenizer = AutoTokenizer.from_pretrained(cli.model)
else:
    tokenizer = tiny_tokenizer(list(data["train"]["text"]))
if tokenizer.pad_token is None:
    tokenizer.pad_token = tokenizer.eos_token  # no new token: the vocabulary stays as it is
labels = {"num_labels": len(names), "id2label": dict(enumerate(names))}
if cli.model:
    model = AutoModelForSequenceClassification.from_pretrained(cli.model, **labels)
    targets = None  # peft's own choice per architecture (q_proj, v_proj for Llama, Qwen2)
else:
    special = {"bos_token_id": tokenizer.eos_token_id, "eos_token_id": tokenizer.eos_token_id}
    config = GPT2Config(
        vocab_size=len(tokenizer), n_embd=64, n_layer=2, n_head=2, **special, **labels
    )
    model = AutoModelForSequenceClassification.from_config(config)
    targets = ["c_attn"]
model.config.pad_token_id = tokenizer.pad_token_id  # the classifier reads the last real token
lora = peft.LoraConfig(
    task_type="SEQ_CLS",  # the classification head ("score") is trained in full
    r=cli.lora_r,
    lora_alpha=2 * cli.lora_r,
    lora_dropout=0.05,
    target_modules=targets,
    fan_in_fan_out=targets == ["c_attn"],  # GPT-2's Conv1D layers
)
model = peft.get_peft_model(model, lora)
model.print_trainable_parameters()


def tokenize(batch):
    return tokenizer(batch["text"], truncation=True, max_length=MAX_LENGTH)


data = data.map(tokenize, batched=True)
args = TrainingArguments(
    output_dir="example_out/hf_lora",
    num_train_epochs=EPOCHS,
    per_device_train_batch_size=16,
    learning_rate=2e-3,
    eval_strategy="epoch",
    logging_strategy="epoch",
    save_strategy="no",
    bf16=cli.bf16,
    report_to=["mlflow"],
    seed=0,
)
trainer = TracingTrainer(  # was: Trainer(...); works the same on the peft model
    model=model,
    args=args,
    train_dataset=data["train"],
    eval_dataset=data["validation"],
    data_collator=DataCollatorWithPadding(tokenizer),
)
trainer.train()
print(f"run id: {trainer.trace_run_id}")
