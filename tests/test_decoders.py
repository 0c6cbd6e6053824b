"""Decoder-only backbones (GPT-2, Llama, Qwen2): the pooling by architecture, the pad
token a tokenizer without one gets, and training them by ``--model <folder>``.

The models are tiny random ones built here from their config classes, with a BPE
tokenizer trained offline that, like the real ones, has no pad token
(``tests/decoderhelp.py``)."""

from __future__ import annotations

import copy
import math
import random

import pandas as pd
import pytest
import torch
from decoderhelp import EOS, KINDS, bpe_tokenizer, save_decoder, suite_texts
from mlflow import MlflowClient
from tracehelp import load_trace, scratch_store, small_config, trace_files

from soi_mlflow.data.mixture import Mixture, MixtureSpec
from soi_mlflow.errors import SoiInputError
from soi_mlflow.model.backbone import (
    check_architecture,
    default_pooling,
    ensure_pad_token,
    is_decoder_only,
    pool,
)
from soi_mlflow.training import TrainConfig, train


@pytest.fixture(scope="module")
def tokenizer():
    return bpe_tokenizer(suite_texts())


@pytest.fixture(scope="module")
def folders(tmp_path_factory, tokenizer):
    """One saved tiny model folder per family, sharing the tokenizer."""
    root = tmp_path_factory.mktemp("decoders")
    return {kind: save_decoder(kind, root / kind, tokenizer) for kind in KINDS}


@pytest.fixture(scope="module")
def uri(tmp_path_factory):
    with scratch_store(tmp_path_factory, "decoders-store") as found:
        yield found


# -- pooling: exact, on known hidden states --


def _hidden() -> torch.Tensor:
    """Row r, token t holds the vector [r, t]."""
    rows, tokens = torch.meshgrid(torch.arange(2.0), torch.arange(5.0), indexing="ij")
    return torch.stack([rows, tokens], dim=-1)


def test_last_pooling_reads_the_last_real_token_on_either_padding_side() -> None:
    right = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert pool(_hidden(), right, "last").tolist() == [[0, 2], [1, 4]]
    assert pool(_hidden(), left, "last").tolist() == [[0, 4], [1, 4]]
    assert pool(_hidden(), right, "first").tolist() == [[0, 0], [1, 0]]
    assert pool(_hidden(), left, "first").tolist() == [[0, 2], [1, 0]]
    assert pool(_hidden(), right, "mean").tolist() == [[0, 1], [1, 2]]
    assert pool(_hidden(), left, "mean").tolist() == [[0, 3], [1, 2]]


def test_the_architecture_decides_the_pooling_and_seq2seq_is_refused() -> None:
    from transformers import BertConfig, GPT2Config, LlamaConfig, Qwen2Config, T5Config

    for config in (GPT2Config(), LlamaConfig(), Qwen2Config()):
        assert is_decoder_only(config) and default_pooling(config) == "last"
    assert not is_decoder_only(BertConfig()) and default_pooling(BertConfig()) == "first"
    with pytest.raises(SoiInputError, match="encoder-decoder"):
        check_architecture(T5Config(), "t5-small")


def test_a_tokenizer_without_pad_token_pads_with_eos_and_keeps_its_vocabulary(
    tokenizer, folders
) -> None:
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folders["llama"])
    model = AutoModel.from_pretrained(folders["llama"])
    size = len(tok)
    assert tok.pad_token is None and model.config.pad_token_id is None
    assert ensure_pad_token(tok, model) == f"eos:{EOS}"
    assert tok.pad_token == EOS and len(tok) == size
    assert model.config.pad_token_id == tok.eos_token_id
    assert ensure_pad_token(tok, model) == EOS  # has one now: kept


def test_an_encoder_decoder_model_is_refused_before_a_run_opens(store, tmp_path) -> None:
    from transformers import T5Config

    T5Config(d_model=16, num_layers=1, num_heads=2, d_ff=32).save_pretrained(tmp_path / "t5")
    config = small_config(store, model=str(tmp_path / "t5"))
    with pytest.raises(SoiInputError, match="encoder-decoder"):
        train(config)
    assert not MlflowClient(store).search_runs(["0"])


# -- training each family on the built-in suite --

SMALL = {"max_examples": 48, "eval_max_examples": 32, "epochs": 2, "lr": 1e-3}


@pytest.mark.e2e
@pytest.mark.parametrize("kind", KINDS)
def test_a_decoder_trains_and_traces_every_example_each_epoch(kind, folders, uri) -> None:
    config = small_config(uri, model=str(folders[kind]), **SMALL)
    result = train(config)
    train_ids = set(Mixture(config.mixture).train["example_id"])
    files = trace_files(uri, result.run_id, "train")
    assert len(files) == 2
    for path in files:
        trace, _ = load_trace(uri, result.run_id, path)
        assert trace["example_id"].is_unique and set(trace["example_id"]) == train_ids
        assert trace["p_gold"].between(0, 1).all()
    params = MlflowClient(uri).get_run(result.run_id).data.params
    assert params["pooling"] == "last"
    # Qwen2's tokenizer class has a pad token of its own (its EOS); the others get EOS
    assert params["pad_token"] == (EOS if kind == "qwen2" else f"eos:{EOS}")


BOOKS = {"max_examples": 500, "eval_max_examples": 200, "epochs": 3, "lr": 1e-3}


@pytest.mark.e2e
def test_last_pooling_nears_the_encoder_and_first_pooling_stays_well_below(folders, uri) -> None:
    """At 500 books examples and 3 epochs (docs/training.md, "Backbones", has the
    measurement on all 2,000, where every family is within 0.05 of the encoder)."""
    accuracy = {
        name: train(small_config(uri, **BOOKS, **kw)).metrics["test/books/acc"]
        for name, kw in {
            "encoder": {},
            "last": {"model": str(folders["llama"])},
            "first": {"model": str(folders["llama"]), "pooling": "first"},
        }.items()
    }
    assert accuracy["last"] >= accuracy["encoder"] - 0.05, accuracy
    assert accuracy["first"] <= accuracy["encoder"] - 0.2, accuracy


def _tail_suite(folder, words: list[str]) -> str:
    """A task whose label is the text's last word, after 2-9 random filler words."""
    rng = random.Random(0)
    yes, no = words[:2]
    filler = words[2:]
    for split, n in (("train", 96), ("test", 64)):
        rows = []
        for _ in range(n):
            label = rng.randrange(2)
            text = " ".join(rng.choices(filler, k=rng.randint(2, 9)) + [(no, yes)[label]])
            rows.append({"text": text, "label": label})
        pd.DataFrame(rows).to_csv(folder / f"{split}.csv", index=False)
    (folder / "suite.yaml").write_text(
        "name: tail\nmembers:\n  tail:\n    axis: task\n    task: tail\n"
        "    label_names: [neg, pos]\n"
        "    files: {train: train.csv, validation: test.csv, test: test.csv}\n"
    )
    return str(folder / "suite.yaml")


@pytest.mark.e2e
@pytest.mark.parametrize("side", ["left"])  # right: the default, in every other test
def test_last_pooling_learns_a_label_in_the_last_word_on_either_side(
    side, tokenizer, tmp_path, uri
) -> None:
    """The label is the last word: a causal model reading any other token cannot know it."""
    tok = copy.deepcopy(tokenizer)
    tok.padding_side = side
    folder = save_decoder("gpt2", tmp_path / "gpt2", tok)
    words = sorted({w for t in suite_texts()[:200] for w in t.split()})
    suite = _tail_suite(tmp_path, words)
    config = TrainConfig(
        MixtureSpec(suite, "task", ("tail",)),
        model=str(folder),
        tracking_uri=uri,
        epochs=3,
        batch_size=16,
        lr=3e-3,
        progress=False,
        log_model=False,
        analyze=False,
    )
    result = train(config)
    assert result.metrics["test/tail/acc"] >= 0.9, result.metrics


# -- precision and memory --


def test_heads_and_logits_stay_float32_under_bf16_autocast(folders) -> None:
    from transformers import AutoModel

    from soi_mlflow.model.module import MultiTaskClassifier

    module = MultiTaskClassifier(AutoModel.from_pretrained(folders["gpt2"]), [2, 3], pooling="last")
    batch = {
        "input_ids": torch.tensor([[5, 6, 7], [8, 9, 0]]),
        "attention_mask": torch.tensor([[1, 1, 1], [1, 1, 0]]),
        "label": torch.tensor([1, 2]),
        "task_idx": torch.tensor([0, 1]),
    }
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = module.validation_step(batch, 0)
    assert out["logits"].dtype == torch.float32
    assert torch.isinf(out["logits"][0, 2]) and torch.isfinite(out["logits"][1]).all()


def test_bad_precision_and_accumulation_are_refused(store) -> None:
    with pytest.raises(SoiInputError, match="precision"):
        train(small_config(store, precision="bf16"))
    with pytest.raises(SoiInputError, match="grad_accum"):
        train(small_config(store, grad_accum=0))


@pytest.mark.e2e
def test_bf16_mixed_with_accumulation_and_checkpointing_traces_float32(folders, uri) -> None:
    config = small_config(
        uri,
        model=str(folders["llama"]),
        precision="bf16-mixed",
        grad_accum=2,
        gradient_checkpointing=True,
        **SMALL,
    )
    result = train(config)
    trace, _ = load_trace(uri, result.run_id, "traces/train/epoch=001.parquet")
    assert len(trace) == 48 and trace["example_id"].is_unique
    assert trace["p_gold"].dtype == "float32" and trace["p_gold"].between(0, 1).all()
    assert (trace["loss"] - (-trace["p_gold"].astype("float64").map(math.log))).abs().max() < 1e-3
    assert trace["step"].max() == 4  # 3 batches an epoch, 2 per step: 2 steps an epoch
    params = MlflowClient(uri).get_run(result.run_id).data.params
    assert params["precision"] == "bf16-mixed" and params["grad_accum"] == "2"
    assert params["effective_batch_size"] == "32" and params["gradient_checkpointing"] == "True"
