"""Transitions between runs on constructed SOI tables with known counts."""

from __future__ import annotations

import pandas as pd
import pytest

from soi_mlflow.analysis.soi import DEFAULT
from soi_mlflow.analysis.transition_tables import majority_soi, seed_transitions, transition_matrix
from soi_mlflow.errors import SoiInputError


def _table(pairs: list[tuple[int, str]], member: str = "books") -> pd.DataFrame:
    ids, soi = zip(*pairs, strict=True)
    return pd.DataFrame(
        {
            "example_id": list(ids),
            "member": member,
            "soi": pd.Categorical(soi, categories=[*DEFAULT.subsets, "unassigned"]),
        }
    )


A = _table(
    [
        (1, "always_correct"),
        (2, "never_learned"),
        (3, "never_learned"),
        (4, "forgotten"),
        (5, "late_learned"),
    ]
)
B = _table(
    [
        (1, "always_correct"),
        (2, "relearned"),
        (3, "never_learned"),
        (4, "always_correct"),
        (9, "forgotten"),
    ]
)


def test_counts_and_coverage() -> None:
    m = transition_matrix(A, B)
    assert m.loc["always_correct", "always_correct"] == 1
    assert m.loc["never_learned", "relearned"] == 1
    assert m.loc["never_learned", "never_learned"] == 1
    assert m.loc["forgotten", "always_correct"] == 1
    assert m.to_numpy().sum() == 4  # ids 1-4 are in both runs
    assert list(m.index) == DEFAULT.subsets and list(m.columns) == DEFAULT.subsets
    assert m.attrs["coverage"] == {
        "matched": 4,
        "only_a": 1,
        "only_b": 1,
        "fraction_of_a": 0.8,
        "fraction_of_b": 0.8,
    }


def test_row_normalisation() -> None:
    m = transition_matrix(A, B, normalize="row")
    assert m.loc["never_learned"].tolist() == [0, 0.5, 0, 0, 0, 0.5]
    assert m.loc["late_learned"].sum() == 0  # id 5 has no partner
    with pytest.raises(SoiInputError, match="normalize"):
        transition_matrix(A, B, normalize="column")


def test_member_filter() -> None:
    a = pd.concat([A, _table([(20, "always_correct")], "movies")])
    b = pd.concat([B, _table([(20, "forgotten")], "movies")])
    m = transition_matrix(a, b, member="movies")
    assert m.loc["always_correct", "forgotten"] == 1 and m.to_numpy().sum() == 1
    with pytest.raises(SoiInputError, match="member 'games' is in neither run"):
        transition_matrix(a, b, member="games")


def test_majority_over_seeds_breaks_ties_by_taxonomy_order() -> None:
    s1 = _table([(1, "forgotten"), (2, "never_learned"), (3, "relearned")])
    s2 = _table([(1, "forgotten"), (2, "always_correct"), (3, "late_learned")])
    s3 = _table([(1, "always_correct"), (2, "always_correct"), (4, "late_learned")])
    maj = majority_soi([s1, s2, s3])
    assert maj.set_index("example_id")["soi"].astype(str).to_dict() == {
        1: "forgotten",
        2: "always_correct",
    }
    tie = majority_soi([s1, s2]).set_index("example_id")["soi"].astype(str).to_dict()
    assert tie[2] == "always_correct" and tie[3] == "late_learned"  # earlier in the taxonomy wins


def test_seed_pairs_sum_and_report_how() -> None:
    m = seed_transitions([A, A], [B, B], aggregate="pairs")
    assert (
        m.to_numpy().sum() == 8 and m.attrs["aggregate"] == "pairs" and m.attrs["seeds"] == (2, 2)
    )
    maj = seed_transitions([A, A], [B, B], aggregate="majority")
    assert maj.to_numpy().sum() == 4 and maj.attrs["aggregate"] == "majority"
    with pytest.raises(SoiInputError, match="as many runs on each side"):
        seed_transitions([A], [B, B], aggregate="pairs")
