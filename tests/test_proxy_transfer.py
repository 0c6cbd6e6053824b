"""Proxy transfer (analysis/proxy_transfer.py) on hand-built members whose answers are
known: a polarity source tells a polarity-agreement pair task what its own words, linearly,
cannot; a topic source does not; a target learnt alone gains nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from soi_mlflow.analysis.profiles import pair_similarity
from soi_mlflow.analysis.proxy_transfer import (
    COLUMNS,
    MIN_EXAMPLES,
    PROXY_TRANSFER,
    RIDGE,
    block_ridge,
    proxy_transfer,
)
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


def test_the_block_solve_is_ridge_on_the_joined_columns() -> None:
    from scipy.linalg import cho_factor, cho_solve

    rng = np.random.default_rng(3)
    x = (rng.random((80, 30)) < 0.2).astype(float)
    f = rng.normal(size=(80, 4))
    y = np.eye(3)[rng.integers(0, 3, 80)]
    xc, fc, yc = x - x.mean(axis=0), f - f.mean(axis=0), y - y.mean(axis=0)
    gram = xc.T @ xc + RIDGE * np.eye(30)
    factor = cho_factor(gram)
    w = cho_solve(factor, xc.T @ yc)
    beta_x, beta_f = block_ridge(factor, xc, xc.T @ yc, w, fc, yc)
    joined = np.hstack([xc, fc])
    direct = np.linalg.solve(joined.T @ joined + RIDGE * np.eye(34), joined.T @ yc)
    np.testing.assert_allclose(np.vstack([beta_x, beta_f]), direct, atol=1e-10)


def test_a_pairs_value_does_not_depend_on_the_other_members() -> None:
    examples = _members(200, seed=2)
    both = examples[examples["member"] != "topic"]
    # the rows come interleaved (polar, topic, agree, polar, ...); here grouped, the members
    # in another order, under a duplicated index: each member's rows keep their order
    mixed = examples.sort_values("member", ascending=False, kind="stable")
    mixed = mixed.set_axis(np.repeat(np.arange(300), 2))
    keys = ["source", "target"]
    full = proxy_transfer(examples, max_examples=120).set_index(keys)
    for frame in (both, mixed):
        other = proxy_transfer(frame, max_examples=120).set_index(keys)
        pd.testing.assert_frame_equal(full.loc[other.index], other)


def test_some_rows_with_a_pair_and_a_member_too_small_are_handled() -> None:
    examples = _members(60)
    agree = examples["member"] == "agree"
    examples.loc[agree & (examples.index % 3 == 0), "text_pair"] = None  # a third unpaired
    small = examples[examples["member"] == "polar"].head(MIN_EXAMPLES - 1)
    out = proxy_transfer(pd.concat([examples, small.assign(member="small")], ignore_index=True))
    involved = (out["source"] == "small") | (out["target"] == "small")
    assert out.loc[~involved, PROXY_TRANSFER].notna().all()
    assert out.loc[involved, PROXY_TRANSFER].isna().all() and involved.sum() == 6
    assert _row(out, "polar", "agree")[PROXY_TRANSFER] > 0.15


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
    # two studies' tables, the first without a value for a pair the second has
    blank = only_one_way.assign(**{PROXY_TRANSFER: np.nan})
    merged = pair_factors(pd.DataFrame(), None, pairs, pd.concat([blank, only_one_way]))
    assert merged[PROXY_TRANSFER].iloc[0] == only_one_way[PROXY_TRANSFER].iloc[0]
    with pytest.raises(SoiInputError, match=f"proxy: no column.*{PROXY_TRANSFER}"):
        pair_factors(pd.DataFrame(), None, pairs, gains.drop(columns=PROXY_TRANSFER))


def test_the_preview_matrix_of_many_members_stays_under_100_columns(gains) -> None:
    from soi_mlflow.studies.profiles import proxy_text

    lines = proxy_text(gains).splitlines()
    assert lines[0].split() == ["polar", "topic", "agree"]
    cells = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert cells["polar"][0] == cells["topic"][1] == cells["agree"][2] == "."  # the diagonal
    polar_agree = _row(gains, "polar", "agree")[PROXY_TRANSFER]
    assert float(cells["polar"][2]) == pytest.approx(polar_agree, abs=5e-4)
    names = [f"member_with_a_long_name_{i}" for i in range(12)]
    many = pd.DataFrame(
        [(s, t, np.nan if t == names[0] else -1e-5) for s in names for t in names if s != t],
        columns=["source", "target", PROXY_TRANSFER],
    )
    lines = proxy_text(many).splitlines()
    assert max(len(line) for line in lines) < 100
    rows = [line.split()[0] for line in lines if line.startswith("member_")]
    assert len(rows) == 12 * 2 and len(set(rows)) == 12  # two blocks, every name its own
    assert "-0.000" not in "\n".join(lines) and "+0.000" in lines[1]
    # the first member is a target nowhere computed: its column is n/a for every source
    assert "\n".join(lines).count("n/a") == 11
    assert proxy_text(many.iloc[:0]) == "(no pairs)"
