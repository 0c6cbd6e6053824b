"""SOI and cartography against cases whose answer is known by hand."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from reference import example_dynamics, example_soi

from soi_mlflow.analysis.cartography import RegionThresholds, dynamics, regions
from soi_mlflow.analysis.matrix import TraceMatrix
from soi_mlflow.analysis.runs import soi_frame
from soi_mlflow.analysis.soi import DEFAULT, Taxonomy, get_taxonomy, register_taxonomy
from soi_mlflow.errors import SoiInputError

SUBSETS = DEFAULT.subsets


def _matrix(correct: np.ndarray, p_gold: np.ndarray | None = None) -> TraceMatrix:
    """``correct`` is (N, E): one row per example."""
    n, e = correct.shape
    p = p_gold if p_gold is not None else np.where(correct, 0.9, 0.1)
    return TraceMatrix(
        example_id=np.arange(n, dtype=np.int64),
        member=pd.Categorical(["m"] * n),
        gold=np.zeros(n, dtype=np.int32),
        epochs=list(range(e)),
        p_gold=np.ascontiguousarray(np.asarray(p, dtype=np.float32).T),
        correct=np.ascontiguousarray(correct.T.astype(bool)),
    )


@pytest.mark.parametrize("epochs", range(1, 7))
def test_every_sequence_falls_in_exactly_one_subset(epochs: int) -> None:
    seqs = np.array(list(itertools.product([0, 1], repeat=epochs)), dtype=bool)
    frame = soi_frame(_matrix(seqs))
    got = frame["soi"].astype(str).tolist()
    assert "unassigned" not in got
    assert got == [example_soi(list(s)) for s in seqs]
    # the rules are mutually exclusive: at most one rule holds for each sequence
    for seq, name in zip(seqs, got, strict=True):
        holds = _rules_holding(list(seq))
        assert holds == [name], (seq, holds)


def _rules_holding(seq: list[bool]) -> list[str]:
    """docs/design.md's SOI rules written out once more, rule by rule, independently of the code."""
    e, split = len(seq), math.ceil(len(seq) / 2)
    forgets = sum(1 for i in range(1, e) if seq[i - 1] and not seq[i])
    first = next((i + 1 for i, c in enumerate(seq) if c), None)
    out = []
    if all(seq):
        out.append("always_correct")
    if not any(seq):
        out.append("never_learned")
    if forgets == 0 and first is not None and 1 < first <= split:
        out.append("early_learned")
    if forgets == 0 and first is not None and first > split:
        out.append("late_learned")
    if forgets and not seq[-1]:
        out.append("forgotten")
    if forgets and seq[-1]:
        out.append("relearned")
    return out


@pytest.mark.parametrize(
    ("seq", "expected"),
    [
        ([1, 1, 1, 1], "always_correct"),
        ([0, 0, 0, 0], "never_learned"),
        ([0, 1, 1, 1], "early_learned"),  # first correct at epoch 2 <= split 2
        ([0, 0, 1, 1], "late_learned"),  # first correct at epoch 3 > split 2
        ([0, 0, 0, 1], "late_learned"),
        ([1, 0, 0, 0], "forgotten"),
        ([0, 1, 1, 0], "forgotten"),
        ([1, 0, 1, 1], "relearned"),
        ([0, 1, 0, 1], "relearned"),
    ],
)
def test_each_rule_on_hand_built_sequences(seq: list[int], expected: str) -> None:
    assert soi_frame(_matrix(np.array([seq])))["soi"].astype(str)[0] == expected


def test_the_split_epoch_is_configurable() -> None:
    seqs = np.array([[0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1]])
    assert soi_frame(_matrix(seqs))["soi"].astype(str).tolist() == ["early_learned", "late_learned"]
    assert (
        soi_frame(_matrix(seqs), split_epoch=2)["soi"].astype(str).tolist() == ["late_learned"] * 2
    )
    with pytest.raises(SoiInputError, match="split must be between 0 and the number of epochs"):
        soi_frame(_matrix(seqs), split_epoch=9)


def test_cartography_against_hand_computed_values() -> None:
    p = np.array([[0.2, 0.4, 0.6, 0.8], [1.0, 1.0, 1.0, 1.0]])
    correct = np.array([[1, 0, 1, 0], [1, 1, 1, 1]], dtype=bool)
    frame = dynamics(_matrix(correct, p))
    assert frame["confidence"].tolist() == pytest.approx([0.5, 1.0], abs=1e-7)
    assert frame["variability"][0] == pytest.approx(math.sqrt(0.05), abs=1e-7)
    assert frame["variability"][1] == 0.0
    assert frame["correctness"].tolist() == [0.5, 1.0]
    assert frame["forgetting_events"].tolist() == [2, 0]
    assert frame["first_learned_epoch"].tolist() == [1, 1]


def test_fast_code_equals_the_reference_exactly() -> None:
    rng = np.random.default_rng(0)
    n, e = 3000, 7
    p = rng.random((n, e)).astype(np.float32)
    correct = rng.random((n, e)) < np.linspace(0.2, 0.9, e)
    fast = soi_frame(_matrix(correct, p))
    for i in range(n):
        ref = example_dynamics(p[i], correct[i])
        row = fast.iloc[i]
        for key, value in ref.items():
            assert row[key] == value, (i, key)  # bit for bit, not approximately
        assert row["soi"] == example_soi(list(correct[i]))


def test_regions_follow_the_thresholds() -> None:
    frame = pd.DataFrame(
        {"confidence": [0.9, 0.1, 0.5, 0.9], "variability": [0.05, 0.05, 0.3, 0.25]}
    )
    assert regions(frame).astype(str).tolist() == [
        "easy_to_learn",
        "hard_to_learn",
        "ambiguous",
        "ambiguous",
    ]
    strict = RegionThresholds(ambiguous_variability=0.4, easy_confidence=0.8, hard_confidence=0.2)
    assert regions(frame, strict).astype(str).tolist() == [
        "easy_to_learn",
        "hard_to_learn",
        "",
        "easy_to_learn",
    ]


def test_custom_taxonomies_are_data() -> None:
    tax = register_taxonomy(
        Taxonomy(
            "stable_or_not",
            (("stable", "forgetting_events == 0"), ("unstable", "forgetting_events > 0")),
        )
    )
    seqs = np.array([[1, 1, 1], [1, 0, 1], [0, 0, 1]])
    assert soi_frame(_matrix(seqs), "stable_or_not")["soi"].astype(str).tolist() == [
        "stable",
        "unstable",
        "stable",
    ]
    assert get_taxonomy("stable_or_not") is tax
    assert DEFAULT.resolve(["forgettable", "never_learned"]) == [
        "forgotten",
        "relearned",
        "never_learned",
    ]
    with pytest.raises(SoiInputError, match="unknown subset 'sometimes'"):
        DEFAULT.resolve(["sometimes"])
    with pytest.raises(SoiInputError, match="rule of 'bad'"):
        register_taxonomy(Taxonomy("broken", (("bad", "no_such_feature > 1"),)))
    with pytest.raises(SoiInputError, match="unknown taxonomy 'nope'"):
        get_taxonomy("nope")
    partial = Taxonomy("partial", (("always", "n_correct == epochs"),))
    assert soi_frame(_matrix(seqs), partial)["soi"].astype(str).tolist() == [
        "always",
        "unassigned",
        "unassigned",
    ]
