"""The built-in offline suite: columns, labels, planted kinds with known structure."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest

from soi_mlflow.data import BuiltinOptions, builtin_suite, get_suite, load_member
from soi_mlflow.data.builtin import DOMAIN_NOISE, PLANTED
from soi_mlflow.data.builtin_tasks import WORD_ORDER
from soi_mlflow.data.lexicon import DOMAINS, INTENTS, LANGS, lexicon
from soi_mlflow.errors import SoiInputError

LEX = lexicon(0)
EXPECTED = {
    "sentiment": ("task", 2, False),
    "paraphrase": ("task", 2, True),
    "entailment": ("task", 3, True),
    **{d: ("source", 2, False) for d in DOMAINS},
    **{lang: ("lang", 8, False) for lang in LANGS},
}


def _frame(member: str, split: str = "train", suite=None) -> pd.DataFrame:
    return load_member(suite or "builtin", member, split).to_pandas()


@pytest.mark.parametrize("member", sorted(EXPECTED))
def test_member_columns_labels_and_planted_kinds(member: str) -> None:
    axis, n_labels, pair = EXPECTED[member]
    suite = get_suite("builtin")
    assert suite.member(member).axis == axis
    for split, size in BuiltinOptions().sizes.items():
        ds = load_member("builtin", member, split)
        expected_cols = [
            "example_id",
            "member",
            "text",
            *(["text_pair"] if pair else []),
            "label",
            "planted",
        ]
        assert ds.column_names == expected_cols
        assert len(ds) == size
        assert len(ds.features["label"].names) == n_labels
        df = ds.to_pandas()
        assert df["label"].between(0, n_labels - 1).all()
        assert set(df["label"]) == set(range(n_labels)), "every label occurs"
        assert (df["member"] == member).all()
        assert df["text"].str.strip().str.len().gt(0).all()
    kinds = Counter(_frame(member)["planted"])
    assert set(kinds) == set(PLANTED)
    for kind in ("ambiguous", "mislabeled"):
        assert 0.01 <= kinds[kind] / 2000 <= 0.10, (kind, kinds)


def _count(words: list[str], vocab) -> int:
    vocab = set(vocab)
    return sum(w in vocab for w in words)


@pytest.mark.parametrize("member", ["sentiment", *DOMAINS])
def test_sentiment_polarity_explains_clean_mislabeled_and_ambiguous(member: str) -> None:
    pos_vocab, neg_vocab = set(LEX.positive), set(LEX.negative)
    if member in DOMAINS:
        pos_vocab |= set(LEX.domain_positive[member])
        neg_vocab |= set(LEX.domain_negative[member])
    for _, ex in _frame(member).iterrows():
        words = ex["text"].split()
        pos, neg = _count(words, pos_vocab), _count(words, neg_vocab)
        if ex["planted"] == "ambiguous":
            assert pos == neg > 0
        else:
            evident = 1 if pos > 0 and neg == 0 else 0 if neg > 0 and pos == 0 else None
            assert evident is not None, ex["text"]
            assert (evident == ex["label"]) == (ex["planted"] == "clean")


def _topics(text: str) -> set[int]:
    return {t for t, words in enumerate(LEX.topics) for w in text.split() if w in words}


def test_paraphrase_label_is_topic_identity() -> None:
    for _, ex in _frame("paraphrase").iterrows():
        a, b = _topics(ex["text"]), _topics(ex["text_pair"])
        assert len(a) == 1
        if ex["planted"] == "ambiguous":
            assert len(b) == 2 and a < b
        else:
            same = int(a == b)
            assert (same == ex["label"]) == (ex["planted"] == "clean")


def test_entailment_label_follows_topic_and_polarity() -> None:
    names = ["entailment", "neutral", "contradiction"]
    for _, ex in _frame("entailment").iterrows():
        hyp = ex["text_pair"].split()
        pos, neg = _count(hyp, LEX.positive), _count(hyp, LEX.negative)
        if ex["planted"] == "ambiguous":
            assert pos == neg == 1
            assert names[ex["label"]] in ("entailment", "contradiction")
            continue
        prem = ex["text"].split()
        p_pos = _count(prem, LEX.positive) > 0
        if _topics(ex["text"]) != _topics(ex["text_pair"]):
            derived = "neutral"
        else:
            derived = "entailment" if (pos > 0) == p_pos else "contradiction"
        assert (derived == names[ex["label"]]) == (ex["planted"] == "clean")


@pytest.mark.parametrize("lang", LANGS)
def test_intent_label_is_the_object_word(lang: str) -> None:
    word_to_intent = {w: k for k, (_, _, obj) in enumerate(INTENTS) for w in LEX.objects[lang][obj]}
    for _, ex in _frame(lang).iterrows():
        intents = [word_to_intent[w] for w in ex["text"].split() if w in word_to_intent]
        if ex["planted"] == "ambiguous":
            assert len(set(intents)) == 2 and ex["label"] in intents
        else:
            assert len(intents) == 1
            assert (intents[0] == ex["label"]) == (ex["planted"] == "clean")


def test_languages_differ_in_surface_and_order_but_share_anchors() -> None:
    vocab = {lang: set(" ".join(_frame(lang)["text"]).split()) for lang in LANGS}
    shared = vocab["lang_a"] & vocab["lang_b"] & vocab["lang_c"]
    anchors = {LEX.objects["lang_a"][o][-1] for o in ("alarm", "radio", "weather", "taxi")}
    assert anchors <= shared
    for a in LANGS:
        for b in LANGS:
            if a < b:
                assert vocab[a] & vocab[b] <= anchors | set(LEX.slots)
                assert len(vocab[a] - vocab[b]) >= 30
    assert len(set(WORD_ORDER.values())) == len(LANGS)


def test_domains_differ_in_vocabulary_and_noise() -> None:
    vocab = {d: set(" ".join(_frame(d)["text"]).split()) for d in DOMAINS}
    for d in DOMAINS:
        own = set(LEX.domain_topic[d]) | set(LEX.domain_positive[d])
        for other in DOMAINS:
            if other != d:
                assert not (own & vocab[other])
    assert len(set(DOMAIN_NOISE.values())) == len(DOMAINS)
    rates = {d: (_frame(d)["planted"] == "mislabeled").mean() for d in DOMAINS}
    assert rates["electronics"] > rates["books"]


def test_generation_is_deterministic_for_a_seed_and_changes_with_it() -> None:
    a = _frame("entailment")
    b = _frame("entailment")
    pd.testing.assert_frame_equal(a, b)
    other = _frame("entailment", suite=builtin_suite(BuiltinOptions(seed=1)))
    assert not set(a["example_id"]) & set(other["example_id"])
    assert (a["text"] != other["text"]).mean() > 0.9


def test_sizes_are_configurable_and_example_i_does_not_depend_on_them() -> None:
    small = builtin_suite(BuiltinOptions(sizes={"train": 50, "validation": 10, "test": 10}))
    df = load_member(small, "lang_b", "train").to_pandas()
    assert len(df) == 50
    assert len(load_member(small, "lang_b", "test")) == 10
    full = _frame("lang_b").head(50)
    pd.testing.assert_frame_equal(df, full)


def test_bad_builtin_options_are_refused() -> None:
    with pytest.raises(SoiInputError, match="size of split 'train'"):
        BuiltinOptions(sizes={"train": 0, "validation": 1, "test": 1})
    with pytest.raises(SoiInputError, match="unknown split 'dev'"):
        BuiltinOptions(sizes={"dev": 10})
    with pytest.raises(SoiInputError, match="mislabeled_rate"):
        BuiltinOptions(mislabeled_rate=0.7)
