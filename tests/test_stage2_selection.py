"""Stage-2 selections on hand-built stage-1 tables: ties, forgetting, taxonomies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from soi_mlflow.analysis.cartography import forgetting_rank
from soi_mlflow.analysis.matrix import TraceMatrix
from soi_mlflow.analysis.runs import soi_frame
from soi_mlflow.analysis.soi import Taxonomy, register_taxonomy
from soi_mlflow.errors import SoiInputError
from soi_mlflow.studies.two_stage import Selection, TwoStageSettings


def _tied_table() -> pd.DataFrame:
    """Two members of 50 examples with index-like ids (books 0..49, movies 50..99),
    every example at the same variability: the whole table is one tie."""
    n = 100
    return pd.DataFrame(
        {
            "example_id": np.arange(n, dtype=np.int64),
            "member": ["books"] * 50 + ["movies"] * 50,
            "variability": np.full(n, 0.25),
            "confidence": np.r_[np.full(50, 0.6), np.full(50, 0.6)],
        }
    )


def test_ties_are_broken_by_a_seeded_draw_not_by_example_id() -> None:
    table = _tied_table()
    member = dict(zip(table["example_id"], table["member"], strict=True))
    top = Selection(metric="variability", fraction=0.2)
    picked = top.select(table, seed=0)
    assert len(picked) == 20
    # by example_id the first 20 rows of books would win; a fair draw takes both members
    assert {member[i] for i in picked} == {"books", "movies"}
    assert sorted(picked) != list(range(20))
    assert np.array_equal(top.select(table, seed=0), picked)  # reproducible
    assert not np.array_equal(np.sort(top.select(table, seed=1)), np.sort(picked))
    # the draw depends on the examples, not on the order of the table's rows
    shuffled = table.sample(frac=1.0, random_state=3)
    assert np.array_equal(top.select(shuffled, seed=0), picked)
    bottom = Selection(metric="confidence", fraction=0.2, highest=False).select(table, seed=0)
    assert {member[i] for i in bottom} == {"books", "movies"}


def test_ties_only_decide_among_equal_values() -> None:
    table = _tied_table()
    table.loc[table["example_id"].isin([97, 98, 99]), "variability"] = 0.4
    picked = Selection(metric="variability", fraction=0.05).select(table, seed=7)
    assert set(picked[:3]) == {97, 98, 99} and len(picked) == 5
    # examples without the metric (too few observed epochs) are not ranked
    table.loc[table["example_id"] < 50, "variability"] = np.nan
    picked = Selection(metric="variability", fraction=0.1).select(table, seed=7)
    assert len(picked) == 5 and set(picked) >= {97, 98, 99} and min(picked) >= 50


def _matrix(correct: list[list[int]]) -> TraceMatrix:
    c = np.asarray(correct, dtype=bool)
    n, e = c.shape
    return TraceMatrix(
        example_id=np.arange(n, dtype=np.int64),
        member=pd.Categorical(["m"] * n),
        gold=np.zeros(n, dtype=np.int32),
        epochs=list(range(e)),
        p_gold=np.ascontiguousarray(np.where(c, 0.9, 0.1).astype(np.float32).T),
        correct=np.ascontiguousarray(c.T),
    )


# id 0 always right, 1 forgotten twice, 2 forgotten once, 3 never right, 4 learned late
SEQUENCES = [
    [1, 1, 1, 1, 1],
    [1, 0, 1, 0, 1],
    [0, 1, 0, 0, 1],
    [0, 0, 0, 0, 0],
    [0, 0, 0, 1, 1],
]


def test_never_learned_examples_rank_as_the_most_forgettable() -> None:
    frame = soi_frame(_matrix(SEQUENCES))
    assert frame["forgetting_events"].tolist() == [0, 2, 1, 0, 0]  # the plain count stays
    assert forgetting_rank(frame).tolist() == [0, 2, 1, np.inf, 0]
    most = Selection(metric="forgetting_events", fraction=0.4).select(frame, seed=0)
    assert most.tolist() == [3, 1]  # never learned first, then two forgetting events
    least = Selection(metric="forgetting_events", fraction=0.4, highest=False).select(frame, 0)
    assert set(least) <= {0, 4}  # the never-learned example is not "stable"
    # an example observed in too few epochs has no forgetting rank at all
    sparse = frame.assign(correctness=[1.0, 0.6, 0.4, np.nan, 0.4])
    assert np.isnan(forgetting_rank(sparse)[3])


def test_the_forgetting_detector_follows_the_same_convention() -> None:
    from soi_mlflow.analysis.noise import detector_scores

    rows = [
        {
            "example_id": i,
            "epoch": e,
            "step": e,
            "member": "m",
            "task": "t",
            "gold": 1,
            "pred": int(right),
            "p_gold": 0.9 if right else 0.1,
            "loss": 0.1,
        }
        for i, seq in enumerate(SEQUENCES)
        for e, right in enumerate(seq)
    ]
    scores = detector_scores(pd.DataFrame(rows))
    assert scores["forgetting"].tolist() == [0, 2, 1, np.inf, 0]


def test_a_registered_taxonomy_names_the_subsets() -> None:
    register_taxonomy(
        Taxonomy(
            "stage2_test_stability",
            (
                ("steady", "forgetting_events == 0 and n_correct > 0"),
                ("shaky", "forgetting_events > 0"),
                ("never", "n_correct == 0"),
            ),
            groups=(("hard", ("shaky", "never")),),
        )
    )
    settings = TwoStageSettings(stage2_subsets=("hard",), taxonomy="stage2_test_stability")
    selection = settings.selection()
    selection.validate()
    frame = soi_frame(_matrix(SEQUENCES), "stage2_test_stability")
    assert sorted(selection.select(frame)) == [1, 2, 3]
    assert selection.describe() == "subsets:hard@stage2_test_stability"
    with pytest.raises(SoiInputError, match="unknown subset 'hard' in taxonomy 'default'"):
        Selection(subsets=("hard",)).validate()
    with pytest.raises(SoiInputError, match="unknown taxonomy 'nope'"):
        Selection(region="ambiguous", taxonomy="nope").validate()
