"""Tiny random decoder-only models (GPT-2, Llama, Qwen2) saved as a user would have them:
built from their ``transformers`` config classes, with a byte-level BPE tokenizer trained
offline on the built-in suite's texts that, like the real ones, has no pad token."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

EOS = "<|endoftext|>"
KINDS = ("gpt2", "llama", "qwen2")


def bpe_tokenizer(texts: Iterable[str], vocab_size: int = 2000):
    """A GPT-2-style byte-level BPE with an EOS token and no pad token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS,
        bos_token=EOS,
        model_input_names=["input_ids", "attention_mask"],
    )


def decoder_model(kind: str, vocab_size: int, eos_id: int, seed: int = 0):
    """A seeded, randomly initialised tiny decoder-only model of family ``kind``."""
    from transformers import GPT2Config, GPT2Model, LlamaConfig, LlamaModel, Qwen2Config, Qwen2Model

    if kind == "gpt2":
        config = GPT2Config(
            vocab_size=vocab_size,
            n_embd=64,
            n_layer=2,
            n_head=2,
            n_positions=128,
            bos_token_id=eos_id,
            eos_token_id=eos_id,
        )
        cls = GPT2Model
    else:
        config_cls, cls = (
            (LlamaConfig, LlamaModel) if kind == "llama" else (Qwen2Config, Qwen2Model)
        )
        config = config_cls(
            vocab_size=vocab_size,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            max_position_embeddings=128,
            bos_token_id=eos_id,
            eos_token_id=eos_id,
            tie_word_embeddings=True,
        )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return cls(config)


def save_decoder(kind: str, folder: Path, tokenizer) -> Path:
    """``kind``'s tiny model and ``tokenizer`` in ``folder`` (what ``--model`` takes)."""
    model = decoder_model(kind, len(tokenizer), tokenizer.eos_token_id)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def suite_texts() -> list[str]:
    """The built-in suite's training texts (all members), to train the tokenizer on."""
    from soi_mlflow.data.mixture import Mixture, MixtureSpec

    spec = MixtureSpec("builtin", "source", ("books", "movies", "restaurants"))
    return list(Mixture(spec).train["text"])
