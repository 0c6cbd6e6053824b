"""Member profiles of a study's mixture, logged into its parent run: the frames the pure
cores of ``analysis/profiles.py`` take, built from the mixture's training data, plus the
factors from each member's run alone and lengths in the training's tokenizer; and the
configuration of an old study rebuilt from what its runs logged (``config.yaml``), so
that its re-analysis logs them too."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import yaml

from soi_mlflow.analysis import identified
from soi_mlflow.analysis.profiles import MEMBER_PROFILES, profile_tables
from soi_mlflow.analysis.proxy_transfer import PROXY_TRANSFER, proxy_transfer
from soi_mlflow.analysis.run_factors import single_run_factors, with_run_factors
from soi_mlflow.data.mixture import Mixture, MixtureSpec
from soi_mlflow.errors import SoiInputError
from soi_mlflow.tracking.artifacts import log_table
from soi_mlflow.tracking.run import RunHandle
from soi_mlflow.training import TrainConfig
from soi_mlflow.training.settings_io import CONFIG_ARTIFACT, build

PROFILES_PROBLEM = "member profiles"
PROXY_PROBLEM = "proxy transfer"


def mixture_examples(mixture: Mixture) -> pd.DataFrame:
    """The mixture's training examples as the profile cores take them: ``member, text,
    text_pair, label_name, task``."""
    table = mixture.example_table("train")
    if "text_pair" not in table.columns:
        table = table.assign(text_pair=None)
    task = {m: mixture.suite.member(m).task for m in mixture.spec.members}
    return table.assign(task=table["member"].map(task))[
        ["member", "text", "text_pair", "label_name", "task"]
    ]


def mixture_profiles(
    spec: MixtureSpec, model: str | None = None, max_length: int = 64, proxy: bool = True
) -> dict[str, pd.DataFrame]:
    """``profile_tables`` of the mixture's training data; lengths in the tokens of
    ``model``'s tokenizer (:func:`tokenizer_lengths`), in words without one; with
    ``proxy``, the ``proxy_transfer`` table of its pairs too."""
    examples = mixture_examples(Mixture(spec))
    tables = examples_profiles(examples, model, max_length)
    if proxy:
        tables[PROXY_TRANSFER] = proxy_transfer(examples)
    return tables


def examples_profiles(
    examples: pd.DataFrame, model: str | None = None, max_length: int = 64
) -> dict[str, pd.DataFrame]:
    """``profile_tables`` of ``examples``, lengths in ``model``'s tokens (else words)."""
    lengths = tokenizer_lengths(examples, model, max_length) if model else None
    return profile_tables(examples, lengths)


def tokenizer_lengths(examples: pd.DataFrame, model: str, max_length: int) -> np.ndarray | None:
    """Tokens per example (text and pair, special tokens included, not truncated) by the
    training's tokenizer: for ``tiny``, the WordPiece built from these examples' texts as
    a training on all of them builds it (a child trained on fewer members builds its own
    from its members' texts); else the model's own tokenizer from its folder or the local
    Hugging Face cache. None when that tokenizer does not load here or has no fast (Rust)
    backend: the profiles then count words."""
    texts = examples["text"].tolist()
    pairs = [p if isinstance(p, str) and p else None for p in examples["text_pair"]]
    if model == "tiny":
        from soi_mlflow.model.encoder import TinyConfig  # deferred: torch
        from soi_mlflow.model.tokenizer import train_wordpiece  # deferred: transformers

        corpus = texts + [p for p in pairs if p]
        tok = train_wordpiece(corpus, vocab_size=TinyConfig().vocab_size, max_length=max_length)
    else:
        from transformers import AutoTokenizer  # deferred: transformers

        try:
            tok = AutoTokenizer.from_pretrained(model, local_files_only=True)
        except (OSError, ValueError):
            return None
    backend = getattr(tok, "backend_tokenizer", None)  # a fast tokenizer: Rust, in batches
    if backend is None:  # a slow (Python) tokenizer: lengths in words instead
        return None
    backend.no_truncation()
    backend.no_padding()
    inputs = [t if p is None else (t, p) for t, p in zip(texts, pairs, strict=True)]
    return np.array([len(e.ids) for e in backend.encode_batch(inputs)], dtype=float)


def log_member_profiles(
    parent: RunHandle, config: TrainConfig | None, scores: pd.DataFrame | None = None
) -> tuple[dict[str, str], dict[str, pd.DataFrame]]:
    """Log ``member_profiles`` (with the single-run factors of ``scores``' runs alone),
    ``class_shares``, ``pair_similarity`` and ``proxy_transfer`` of the training data of
    ``config`` (the study's base configuration) to ``parent``. Returns the problems for
    the parent's "Not identified" section (none, or why the profiles are missing: data
    that no longer loads; or why the proxy transfer alone is) and the tables logged, by
    name. Without ``config`` (an old
    study whose runs logged no ``config.yaml``) nothing is logged."""
    if config is None:
        print("member profiles: skipped, the study's training mixture is unknown", flush=True)
        return {}, {}
    try:
        examples = mixture_examples(Mixture(config.mixture))
        tables = examples_profiles(examples, config.model, config.max_length)
    except (SoiInputError, OSError) as exc:
        return {PROFILES_PROBLEM: identified.not_identified(exc)}, {}
    problems = {}
    try:  # its own failure costs only the proxy, not the profiles
        tables[PROXY_TRANSFER] = proxy_transfer(examples)
    except SoiInputError as exc:
        problems[PROXY_PROBLEM] = identified.not_identified(exc)
    if scores is not None:
        factors = single_run_factors(scores, parent.tracking_uri)
        tables[MEMBER_PROFILES] = with_run_factors(tables[MEMBER_PROFILES], factors)
    for name, frame in tables.items():
        log_table(parent.client, parent.run_id, frame, name)
    return problems, tables


def alone_scores(client: Any, single: dict[str, list[str]]) -> pd.DataFrame:
    """The scores frame :func:`log_member_profiles` takes (``seed, source, target, score,
    run_id``, no source) for members trained alone, from each run's test accuracy: how
    the single-vs-multi study hands its single runs to the profiles."""
    rows = [
        {
            "seed": seed,
            "source": None,
            "target": member,
            "score": client.get_run(run_id).data.metrics.get(f"test/{member}/acc", np.nan),
            "run_id": run_id,
        }
        for member, run_ids in single.items()
        for seed, run_id in enumerate(run_ids)
    ]
    return pd.DataFrame(rows, columns=["seed", "source", "target", "score", "run_id"])


def logged_config(
    cache: Any, run: Any, members: list[str], run_ids: list[str]
) -> TrainConfig | None:
    """The training configuration of the study whose parent is ``run``, with ``members``
    trained and no OOD: from the parent's ``config.yaml`` (studies started from the
    command line), else from the first of ``run_ids`` (its children) that has one; None
    when none has. A suite built in Python is logged by name only (its defaults)."""
    for run_id in dict.fromkeys([run.info.run_id, *run_ids]):
        if CONFIG_ARTIFACT not in {a.path for a in cache.client.list_artifacts(run_id)}:
            continue
        values = yaml.safe_load(cache.file(run_id, CONFIG_ARTIFACT).read_text("utf-8"))
        try:
            return build(TrainConfig, {**(values or {}), "members": tuple(members), "ood": ()})
        except (SoiInputError, TypeError):
            return None
    return None


PREVIEW_COLUMNS = {  # factor -> short row label of the preview
    "size": "examples",
    "n_classes": "classes",
    "class_entropy": "class entropy (bits)",
    "majority_share": "majority share",
    "tokens_mean": "words, mean",
    "tokens_p90": "words, p90",
    "chars_mean": "characters, mean",
    "pair_share": "pair share",
    "vocab_size": "vocabulary",
    "type_token_ratio": "type-token ratio",
    "question_rate": "questions",
    "negation_rate": "negations (en)",
    "digit_rate": "with digits",
    "uppercase_rate": "uppercase",
    "punctuation_rate": "punctuation",
}


def profiles_text(profiles: pd.DataFrame, width: int = 100, name_width: int = 12) -> str:
    """The member profiles as compact text under ``width`` columns: one row per factor,
    one column per member (names cut to ``name_width``), in blocks of as many members as
    fit."""
    table = profiles.reindex(columns=list(PREVIEW_COLUMNS)).T
    table.index = [PREVIEW_COLUMNS[c] for c in table.index]
    return _blocks(table, width, name_width, _short)


def proxy_text(gains: pd.DataFrame, width: int = 100, name_width: int = 12) -> str:
    """The proxy transfer (``analysis/proxy_transfer.py``) as a source x target matrix,
    rows the sources, in blocks of target columns under ``width`` columns: ``.`` on the
    diagonal, ``n/a`` where it could not be computed (one class, too few examples)."""
    if gains.empty:
        return "(no pairs)"
    order = list(dict.fromkeys([*gains["target"], *gains["source"]]))
    table = gains.pivot(index="source", columns="target", values=PROXY_TRANSFER)
    table = table.reindex(index=order, columns=order).astype(object)
    for i, row in enumerate(order):
        for j, column in enumerate(order):
            value = table.iat[i, j]
            table.iat[i, j] = "." if row == column else _signed(value)
    table.index = short_names(order, name_width)
    return _blocks(table, width, name_width, str)


def _signed(value: float) -> str:
    """``+0.219``; ``n/a`` for NaN; a value that rounds to zero shows as ``+0.000``."""
    if pd.isna(value):
        return "n/a"
    return f"{round(float(value), 3) + 0.0:+.3f}"  # + 0.0: no "-0.000"


def short_names(names: list[Any], width: int) -> list[str]:
    """``names`` cut to ``width`` characters, keeping their ends where the cut would make
    two alike (``member_wi~_10``, ``member_wi~_11``)."""
    cut = [str(n)[:width] for n in names]
    if len(set(cut)) == len(cut):
        return cut
    tail = max(1, width // 3)
    return [
        s if len(s) <= width else f"{s[: width - tail - 1]}~{s[-tail:]}" for s in map(str, names)
    ]


def _blocks(table: pd.DataFrame, width: int, name_width: int, fmt: Callable[[Any], str]) -> str:
    """``table`` as text in blocks of as many columns (names cut to ``name_width``) as
    fit in ``width`` beside its row labels."""
    if table.empty:
        return "(none)"
    label = max(len(str(s)) for s in table.index)
    per_block = max(1, (width - label - 1) // (name_width + 2))
    blocks = []
    for start in range(0, table.shape[1], per_block):
        part = table.iloc[:, start : start + per_block].copy()
        part.columns = short_names(list(part.columns), name_width)
        blocks.append(part.to_string(float_format=fmt, na_rep="-"))
    return "\n\n".join(blocks)


def _short(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() and abs(value) >= 1 else f"{value:.3g}"


def print_profiles(spec: MixtureSpec) -> None:
    """Print the training members' profiles and, with two members or more, their proxy
    transfer (``soi-mlflow preview``)."""
    tables = mixture_profiles(spec, proxy=len(spec.members) > 1)
    print("\nmember profiles (training data; docs/studies.md, 'Member profiles'):")
    print(profiles_text(tables[MEMBER_PROFILES]))
    if PROXY_TRANSFER in tables:
        gains = tables[PROXY_TRANSFER]
        low, high = int(gains["n_target"].min()), int(gains["n_target"].max())
        used = f"{low:,}" if low == high else f"{low:,} to {high:,}"
        print(
            "\nproxy transfer (row: source, column: target): what the source's labels add to "
            "a linear\nword model of the target, in accuracy; an estimate from the data "
            f"before training, on {used}\nexamples a target (noisy by a few points below "
            "about 1,000; docs/studies.md, 'Proxy transfer'):"
        )
        print(proxy_text(gains))
