"""Proxy transfer (analysis/proxy_transfer.py) on hand-built members whose answers are
known: a polarity source tells a polarity-agreement pair task what its own words, linearly,
cannot; a topic source does not; a target learnt alone gains nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from soi_mlflow.analysis.profiles import pair_similarity
from soi_mlflow.analysis.proxy_transfer import COLUMNS, PROXY_TRANSFER, proxy_transfer
from soi_mlflow.analysis.transfer_factors import pair_factors
from soi_mlflow.errors import SoiInputError

POS = [f"pos{i}" for i in range(8)]
NEG = [f"neg{i}" for i in range(8)]
TOPIC_A = [f"ta{i}" for i in range(8)]
TOPIC_B = [f"tb{i}" for i in range(8)]
FILLER = [f"f{i}" for i in range(30)]


def _text(rng: np.random.Generator, *groups: list[str]) -> str:
    words = [str(rng.choice(g)) for g in groups] + list(rng.choice(FILLER, 3))
    return " ".join(rng.permutation(words))


def _members(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """``polar``: one polarity word decides; ``topic``: one topic word decides, polarity at
    random; ``agree``: a pair, "same" iff the two texts' polarity words agree (a XOR of
    words: no linear bag of words learns it)."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        y = int(rng.integers(2))
        rows.append(("polar", _text(rng, POS if y else NEG), None, "pos" if y else "neg"))
        y, p = int(rng.integers(2)), int(rng.integers(2))
        text = _text(rng, TOPIC_A if y else TOPIC_B, POS if p else NEG)
        rows.append(("topic", text, None, "a" if y else "b"))
        a, b = int(rng.integers(2)), int(rng.integers(2))
        first = _text(rng, POS if a else NEG, TOPIC_A)
        second = _text(rng, POS if b else NEG, TOPIC_A)
        rows.append(("agree", first, second, "same" if a == b else "different"))
    return pd.DataFrame(rows, columns=["member", "text", "text_pair", "label_name"])


@pytest.fixture(scope="module")
def gains() -> pd.DataFrame:
    return proxy_transfer(_members())


def _row(frame: pd.DataFrame, source: str, target: str) -> pd.Series:
    return frame.set_index(["source", "target"]).loc[(source, target)]


def test_a_related_source_lifts_a_target_its_words_cannot_learn(gains) -> None:
    assert list(gains.columns) == COLUMNS
    assert len(gains) == 6 and (gains["n_target"] == 300).all()
    polar_agree = _row(gains, "polar", "agree")
    # alone, agreement is a XOR of words: chance (0.5) for a linear model
    assert polar_agree["proxy_alone"] < 0.65
    # with the polarity of each text (u, v, u*v, |u-v|), it is nearly solved
    assert polar_agree["proxy_with_source"] > 0.9
    assert polar_agree[PROXY_TRANSFER] == pytest.approx(
        polar_agree["proxy_with_source"] - polar_agree["proxy_alone"]
    )
    # a topic source's labels say nothing of polarity agreement
    assert abs(_row(gains, "topic", "agree")[PROXY_TRANSFER]) < 0.06
    # polar is learnt alone from its words: nothing left for any source to add
    for source in ("topic", "agree"):
        row = _row(gains, source, "polar")
        assert row["proxy_alone"] > 0.95 and abs(row[PROXY_TRANSFER]) < 0.03


def test_it_is_the_same_on_a_second_call_and_samples_at_most_max_examples() -> None:
    examples = _members(200, seed=1)
    first = proxy_transfer(examples, max_examples=150)
    pd.testing.assert_frame_equal(first, proxy_transfer(examples, max_examples=150))
    assert (first["n_target"] == 150).all()
    assert _row(first, "polar", "agree")[PROXY_TRANSFER] > 0.25


def test_a_member_with_one_class_gives_nan_not_an_error() -> None:
    examples = _members(60)
    one = examples[examples["member"] == "polar"].assign(member="flat", label_name="pos")
    out = proxy_transfer(pd.concat([examples, one], ignore_index=True))
    flat = out[(out["source"] == "flat") | (out["target"] == "flat")]
    assert len(flat) == 6 and flat[PROXY_TRANSFER].isna().all()
    assert (
        out.loc[(out["source"] != "flat") & (out["target"] != "flat"), PROXY_TRANSFER].notna().all()
    )


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"folds": 1}, "folds"),
        ({"max_examples": 5}, "max_examples"),
        ({"max_words": 0}, "max_words"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(kwargs, field) -> None:
    with pytest.raises(SoiInputError, match=field):
        proxy_transfer(_members(20), **kwargs)


def test_bad_frames_are_refused_naming_what_is_missing() -> None:
    with pytest.raises(SoiInputError, match="label_name"):
        proxy_transfer(_members(20).drop(columns="label_name"))
    with pytest.raises(SoiInputError, match="label_name"):
        proxy_transfer(_members(20).assign(label_name=None))


def test_pair_factors_take_the_proxy_in_its_own_direction_only(gains) -> None:
    examples = _members()
    pairs = [("polar", "agree"), ("agree", "polar"), ("topic", "agree")]
    only_one_way = gains[(gains["source"] == "polar") & (gains["target"] == "agree")]
    factors = pair_factors(pd.DataFrame(), pair_similarity(examples), pairs, only_one_way)
    factors = factors.set_index(["source", "target"])
    assert factors.loc[("polar", "agree"), PROXY_TRANSFER] > 0.3
    # unlike the (symmetric) similarity columns, the reverse direction is not filled in
    assert np.isnan(factors.loc[("agree", "polar"), PROXY_TRANSFER])
    assert np.isnan(factors.loc[("topic", "agree"), PROXY_TRANSFER])
    with pytest.raises(SoiInputError, match="proxy"):
        pair_factors(pd.DataFrame(), None, pairs, gains.drop(columns=PROXY_TRANSFER))


def test_the_preview_matrix_of_many_members_stays_under_100_columns(gains) -> None:
    from soi_mlflow.studies.profiles import proxy_text

    text = proxy_text(gains)
    lines = text.splitlines()
    assert lines[0].split() == ["polar", "topic", "agree"]
    agree_row = next(line for line in lines if line.startswith("polar "))
    assert "+0.5" in agree_row  # polar -> agree, the column of agree
    names = [f"member_with_a_long_name_{i}" for i in range(9)]
    many = pd.DataFrame(
        [(s, t, 0.0) for s in names for t in names if s != t],
        columns=["source", "target", PROXY_TRANSFER],
    )
    lines = proxy_text(many).splitlines()
    assert max(len(line) for line in lines) < 100
    assert sum(line.startswith("member_with_") for line in lines) == 9 * 2  # two blocks
