"""Member profiles and pair similarity (analysis/profiles.py) on hand-built frames whose
answers are known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from soi_mlflow.analysis.profiles import (
    PAIR_COLUMNS,
    PROFILE_COLUMNS,
    class_shares,
    member_profiles,
    pair_similarity,
    profile_tables,
)
from soi_mlflow.analysis.run_factors import trace_factors, with_run_factors
from soi_mlflow.errors import SoiInputError


def _frame(rows: list[tuple]) -> pd.DataFrame:
    """Rows of (member, text, text_pair, label_name[, task])."""
    columns = ["member", "text", "text_pair", "label_name", "task"][: len(rows[0])]
    return pd.DataFrame(rows, columns=columns)


def test_profile_of_a_hand_built_member() -> None:
    ex = _frame(
        [
            ("q", "Is it good?", None, "pos"),
            ("q", "Why NOT?", "Because 42.", "neg"),
            ("s", "the cat sat", None, "pos"),
            ("s", "the cat sat", None, "pos"),
            ("s", "a dog", None, "pos"),
            ("s", "a dog", None, "neg"),
        ]
    )
    p = member_profiles(ex)
    assert list(p.index) == ["q", "s"] and p.index.name == "member"
    assert list(p.columns) == list(PROFILE_COLUMNS)
    q, s = p.loc["q"], p.loc["s"]
    assert q["size"] == 2 and s["size"] == 4
    assert q["question_rate"] == 1.0 and s["question_rate"] == 0.0  # every text has "?"
    assert q["class_entropy"] == pytest.approx(1.0)  # 50/50: one bit
    assert q["majority_share"] == 0.5 and s["majority_share"] == 0.75
    assert s["class_entropy"] == pytest.approx(-(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25)))
    assert q["pair_share"] == 0.5 and s["pair_share"] == 0.0
    # words: is it good | why not because 42 (the pair counts); the cat sat x2, a dog x2
    assert q["tokens_mean"] == 3.5 and s["tokens_mean"] == 2.5
    assert q["tokens_p90"] == pytest.approx(3 + 0.9 * 1)  # linear between 3 and 4
    assert q["chars_mean"] == (11 + 8 + 11) / 2
    assert q["vocab_size"] == 7 and s["vocab_size"] == 5
    assert s["type_token_ratio"] == pytest.approx(5 / 10)
    assert q["negation_rate"] == 0.5 and s["negation_rate"] == 0.0
    assert q["digit_rate"] == 0.5 and s["digit_rate"] == 0.0
    # uppercase letters per word character: I, W, N, O, T, B out of 2+2+4+3+3+7+2 = 23
    assert q["uppercase_rate"] == pytest.approx(6 / 23) and s["uppercase_rate"] == 0.0
    # punctuation per character: ? ? . out of 11 + 8 + 11 + one joining newline
    assert q["punctuation_rate"] == pytest.approx(3 / 31)


def test_words_are_unicode_lowercased_and_split_at_anything_else() -> None:
    ex = _frame([("m", "Ça\u00a0VA, ça va!\u3000x_1 don't", None, "a")])
    p = member_profiles(ex)
    # ça va ça va x_1 don t: 7 words, 5 kinds
    assert p.loc["m", "tokens_mean"] == 7 and p.loc["m", "vocab_size"] == 5
    assert p.loc["m", "negation_rate"] == 1.0  # English "n't"
    # combining marks stay in their word (Devanagari vowel signs, a decomposed accent)
    ex = _frame([("m", "नमस्ते दुनिया cafe\u0301", None, "a")])
    assert member_profiles(ex).loc["m", "tokens_mean"] == 3


def test_negation_follows_each_members_language_and_unknown_gives_nan() -> None:
    ex = _frame(
        [
            ("de", "das ist nicht gut", None, "a"),
            ("de", "das ist gut", None, "a"),
            ("fr", "ce n'est pas bon", None, "a"),
            ("es", "nunca más", None, "a"),
            ("en", "no way", None, "a"),
            ("xx", "not here", None, "a"),
        ]
    )
    langs = {"de": "de", "fr": "fr", "es": "es", "xx": "tlh"}
    rate = member_profiles(ex, languages=langs)["negation_rate"]
    assert rate["de"] == 0.5 and rate["fr"] == 1.0 and rate["es"] == 1.0 and rate["en"] == 1.0
    assert np.isnan(rate["xx"])
    # in English, "nicht" is no negation
    assert member_profiles(ex)["negation_rate"]["de"] == 0.0


def test_token_lengths_replace_word_counts_and_are_checked() -> None:
    ex = _frame([("m", "a b", None, "x"), ("m", "c", None, "x"), ("n", "d", None, "y")])
    p = member_profiles(ex, token_lengths=[10, 20, 5])
    assert p.loc["m", "tokens_mean"] == 15 and p.loc["m", "tokens_median"] == 15
    assert p.loc["n", "tokens_p90"] == 5
    with pytest.raises(SoiInputError, match="token_lengths"):
        member_profiles(ex, token_lengths=[1, 2])


def test_bad_input_names_the_field() -> None:
    with pytest.raises(SoiInputError, match="label_name"):
        member_profiles(pd.DataFrame({"member": ["a"], "text": ["x"]}))
    with pytest.raises(SoiInputError, match="no rows"):
        pair_similarity(pd.DataFrame(columns=["member", "text", "label_name"]))
    with pytest.raises(SoiInputError, match="DataFrame"):
        member_profiles([("a", "x", "y")])  # type: ignore[arg-type]


def test_class_shares_long_table() -> None:
    ex = _frame([("m", "a", None, "x"), ("m", "b", None, "y"), ("m", "c", None, "y")])
    shares = class_shares(ex).set_index("label_name")
    assert shares["count"].to_dict() == {"x": 1, "y": 2}
    assert shares["share"].to_dict() == pytest.approx({"x": 1 / 3, "y": 2 / 3})


def test_identical_members_are_similar_and_disjoint_ones_are_not() -> None:
    ex = _frame(
        [
            ("a", "red green blue", None, "x", "t"),
            ("a", "red red", None, "y", "t"),
            ("b", "red green blue", None, "x", "t"),
            ("b", "red red", None, "y", "t"),
            ("c", "one two", None, "x", "u"),
        ]
    )
    pairs = pair_similarity(ex).set_index(["source", "target"])
    assert list(pairs.columns) == list(PAIR_COLUMNS)
    assert len(pairs) == 6  # ordered pairs of 3 members
    same = pairs.loc[("a", "b")]
    assert same["vocab_jaccard"] == 1.0 and same["vocab_weighted_jaccard"] == pytest.approx(1.0)
    assert same["unigram_jsd"] == pytest.approx(0.0, abs=1e-12)
    assert same["tfidf_cosine"] == pytest.approx(1.0)
    assert same["label_overlap"] == 1.0 and same["class_distribution_l1"] == 0.0
    apart = pairs.loc[("a", "c")]
    assert apart["vocab_jaccard"] == 0.0 and apart["vocab_weighted_jaccard"] == 0.0
    assert apart["unigram_jsd"] == pytest.approx(math.log(2))  # natural log: at most ln 2
    assert apart["tfidf_cosine"] == pytest.approx(0.0)
    assert np.isnan(apart["class_distribution_l1"])  # other task: no shared head


def test_pair_factors_by_hand_and_their_asymmetry() -> None:
    ex = _frame(
        [
            ("a", "x x y", None, "p", "t"),
            ("a", "z", None, "q", "t"),
            ("b", "x y y y", None, "p", "t"),
        ]
    )
    pairs = pair_similarity(ex).set_index(["source", "target"])
    ab, ba = pairs.loc[("a", "b")], pairs.loc[("b", "a")]
    # a: x .5 y .25 z .25; b: x .25 y .75
    assert ab["vocab_jaccard"] == pytest.approx(2 / 3)
    assert ab["vocab_weighted_jaccard"] == pytest.approx((0.25 + 0.25) / (0.5 + 0.75 + 0.25))
    p, q = np.array([0.5, 0.25, 0.25]), np.array([0.25, 0.75, 0.0])
    m = (p + q) / 2

    def kl(u: np.ndarray) -> float:
        return sum(ui * math.log(ui / mi) for ui, mi in zip(u, m, strict=True) if ui > 0)

    assert ab["unigram_jsd"] == pytest.approx(0.5 * kl(p) + 0.5 * kl(q))
    assert ab["unigram_jsd"] == pytest.approx(ba["unigram_jsd"])
    # label_overlap: the share of the target's labels the source has
    assert ab["label_overlap"] == 1.0 and ba["label_overlap"] == 0.5
    # class distributions: a p .5 q .5, b p 1
    assert ab["class_distribution_l1"] == pytest.approx(1.0) == ba["class_distribution_l1"]


def test_tfidf_cosine_matches_a_direct_transcription() -> None:
    ex = _frame(
        [
            ("a", "x y", None, "p"),
            ("a", "y z z", None, "p"),
            ("b", "x", None, "p"),
            ("b", "z w", None, "p"),
        ]
    )
    docs = [["x", "y"], ["y", "z", "z"], ["x"], ["z", "w"]]
    vocab = sorted({w for d in docs for w in d})
    n = len(docs)
    df = {w: sum(w in d for d in docs) for w in vocab}
    rows = []
    for d in docs:
        v = np.array([d.count(w) * (math.log((1 + n) / (1 + df[w])) + 1) for w in vocab])
        rows.append(v / np.linalg.norm(v))
    ca, cb = (rows[0] + rows[1]) / 2, (rows[2] + rows[3]) / 2
    expected = ca @ cb / (np.linalg.norm(ca) * np.linalg.norm(cb))
    got = pair_similarity(ex).set_index(["source", "target"]).loc[("a", "b"), "tfidf_cosine"]
    assert got == pytest.approx(expected)


def test_profile_tables_equal_the_separate_calls() -> None:
    ex = _frame([("a", "x y?", "z", "p"), ("b", "y 1", None, "q"), ("b", "X", None, "p")])
    tables = profile_tables(ex)
    pd.testing.assert_frame_equal(tables["member_profiles"], member_profiles(ex))
    pd.testing.assert_frame_equal(tables["pair_similarity"], pair_similarity(ex))
    pd.testing.assert_frame_equal(tables["class_shares"], class_shares(ex))


def _trace(p: dict[int, list[float]], right: dict[int, list[bool]]) -> pd.DataFrame:
    rows = [
        {
            "example_id": eid,
            "epoch": e,
            "step": e,
            "member": "m",
            "task": "t",
            "gold": 1,
            "pred": 1 if ok else 0,
            "p_gold": pg,
            "loss": -np.log(pg),
        }
        for eid, ps in p.items()
        for e, (pg, ok) in enumerate(zip(ps, right[eid], strict=True))
    ]
    return pd.DataFrame(rows)


def test_trace_factors_and_their_join() -> None:
    p = {1: [0.9, 0.95, 0.99], 2: [0.2, 0.1, 0.3], 3: [0.6, 0.3, 0.4]}
    right = {1: [True] * 3, 2: [False] * 3, 3: [True, False, False]}
    factors = trace_factors(_trace(p, right))
    # example 2 never learned; examples 2 and 3 have mean gold probability below 0.5
    assert factors == pytest.approx({"never_learned_share": 1 / 3, "noise_share": 2 / 3})
    profiles = member_profiles(_frame([("a", "x", None, "p"), ("b", "y", None, "p")]))
    run = pd.DataFrame(
        {"difficulty_error": [0.25], **{k: [v] for k, v in factors.items()}},
        index=pd.Index(["a"], name="member"),
    )
    joined = with_run_factors(profiles, run)
    assert joined.loc["a", "difficulty_error"] == 0.25
    assert joined.loc["b", ["difficulty_error", "noise_share"]].isna().all()


def test_preview_text_of_many_members_stays_under_100_columns() -> None:
    from soi_mlflow.studies.profiles import PREVIEW_COLUMNS, profiles_text

    names = [f"member_with_a_long_name_{i}" for i in range(9)]
    ex = _frame([(m, f"word{i} and more?", None, "a") for i, m in enumerate(names)])
    text = profiles_text(member_profiles(ex))
    lines = text.splitlines()
    assert max(len(line) for line in lines) < 100
    assert sum(line.startswith("examples") for line in lines) == 2  # two blocks of members
    assert len(lines) == 2 * (len(PREVIEW_COLUMNS) + 1) + 1
    # names cut alike keep their ends: every member its own column
    shown = [name for line in lines if line.startswith(" ") for name in line.split()]
    assert len(shown) == len(set(shown)) == 9 and "member_~me_0" in shown
    assert "questions" in text


def test_tiny_tokenizer_lengths_count_special_tokens_and_pairs() -> None:
    from soi_mlflow.studies.profiles import tokenizer_lengths

    ex = _frame(
        [
            ("a", "good film", None, "p"),
            ("a", "good film", "bad film", "p"),
            ("b", "bad", None, "q"),
        ]
    )
    # every word is seen twice or more, so each is one token: [CLS] text [SEP] (pair [SEP])
    lengths = tokenizer_lengths(ex, "tiny", 64)
    assert list(lengths) == [2 + 2, 4 + 3, 1 + 2]
    assert tokenizer_lengths(ex, "/nonexistent/model/folder", 64) is None
