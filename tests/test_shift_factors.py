"""What explains where a source pushes a target's predictions (analysis/shift_factors.py):
hand-built shifts whose cause is known: each target's predictions move toward its source's
class distribution, by 0.4 x the difference of their shares of positive labels."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from soi_mlflow.analysis.shift_factors import (
    AGAINST,
    leading_classes,
    shift_factor_problems,
    shift_factor_table,
    source_class_shift,
)
from soi_mlflow.errors import SoiInputError

# the share of "pos" in each member's training labels
POSITIVE = {"A": 0.9, "B": 0.75, "C": 0.5, "D": 0.3, "E": 0.6}


def _shares(positive: dict[str, float]) -> pd.DataFrame:
    rows = [
        {"member": m, "label_name": name, "count": 0, "share": share}
        for m, p in positive.items()
        for name, share in (("neg", 1 - p), ("pos", p))
    ]
    return pd.DataFrame(rows)


def _shift(seeds: int = 3, noise: float = 0.01) -> pd.DataFrame:
    """Per seed and ordered pair: the target's share of "pos" moves by 0.4 x (the source's
    share of pos - the target's), "neg" by the opposite, plus a little noise."""
    rng = np.random.default_rng(0)
    rows = []
    for seed, (s, t) in itertools.product(range(seeds), itertools.permutations(POSITIVE, 2)):
        move = 0.4 * (POSITIVE[s] - POSITIVE[t]) + rng.normal(0, noise)
        for pred, sign in (("pos", 1), ("neg", -1)):
            rows.append(
                {"seed": seed, "source": s, "target": t, "pred": pred, "shift": sign * move,
                 "share_alone": 0.5, "share_with": 0.5 + sign * move, "problem": None}
            )  # fmt: skip
    return pd.DataFrame(rows)


def _factors(seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    pairs = list(itertools.permutations(POSITIVE, 2))
    return pd.DataFrame(
        {
            "source": [s for s, _ in pairs],
            "target": [t for _, t in pairs],
            "class_distribution_l1": [2 * abs(POSITIVE[s] - POSITIVE[t]) for s, t in pairs],
            "unrelated": rng.normal(size=len(pairs)),
        }
    )


def test_the_class_a_source_leads_is_the_one_it_holds_more_of_than_the_target() -> None:
    leading = leading_classes(_shares(POSITIVE))
    assert leading[("A", "B")] == "pos" and leading[("B", "A")] == "neg"
    assert leading[("C", "D")] == "pos" and leading[("C", "E")] == "neg"
    assert len(leading) == 20
    # equal distributions give no direction: the pair is left out
    assert leading_classes(_shares({"A": 0.5, "B": 0.5, "C": 0.9})) == {
        ("C", "A"): "pos", ("C", "B"): "pos", ("A", "C"): "neg", ("B", "C"): "neg"
    }  # fmt: skip


def test_a_class_a_member_has_no_example_of_counts_as_a_share_of_zero() -> None:
    shares = pd.DataFrame(
        {
            "member": ["S", "S", "T"],
            "label_name": ["neg", "pos", "neg"],  # T: all negative, no "pos" row
            "count": [15, 85, 100],
            "share": [0.15, 0.85, 1.0],
        }
    )
    assert leading_classes(shares) == {("S", "T"): "pos", ("T", "S"): "neg"}


def test_the_shift_is_read_toward_the_class_the_source_leads() -> None:
    out = source_class_shift(_shift(noise=0.0), _shares(POSITIVE))
    assert len(out) == 3 * 20  # one row per seed and ordered pair
    a_to_b = out[(out["source"] == "A") & (out["target"] == "B")]
    assert set(a_to_b["toward"]) == {"pos"} and np.allclose(a_to_b["delta"], 0.06)
    # a balanced source pushes a skewed target back: C -> A moves A's pos by -0.16
    c_to_a = out[(out["source"] == "C") & (out["target"] == "A")]
    assert set(c_to_a["toward"]) == {"neg"} and np.allclose(c_to_a["delta"], 0.16)


def test_a_target_without_the_sources_class_and_problem_rows_are_left_out() -> None:
    shift = _shift()
    other = shift[(shift["target"] == "B")].assign(target="F")
    other["pred"] = other["pred"].map({"pos": "yes", "neg": "no"})  # another head
    failed = shift.iloc[:2].assign(problem="not identified: no test trace")
    f_shares = pd.DataFrame(
        {"member": ["F", "F"], "label_name": ["no", "yes"], "count": 0, "share": 0.5}
    )
    shares = pd.concat([_shares(POSITIVE), f_shares])
    assert ("B", "F") not in leading_classes(shares)  # no class in common
    out = source_class_shift(pd.concat([shift.iloc[2:], other, failed]), shares)
    assert "F" not in set(out["target"])
    assert len(out) == 3 * 20 - 1  # the first pair's seed 0 failed


def test_the_class_distribution_ranks_first_and_an_unrelated_factor_includes_zero() -> None:
    factors = _factors().assign(same=1.0)  # a factor the members do not vary
    table = shift_factor_table(_shift(), _shares(POSITIVE), factors, n_boot=300)
    assert set(table["against"]) == {AGAINST}
    top = table.iloc[0]
    assert top["factor"] == "class_distribution_l1" and top["rank"] == 1
    # the move is 0.2 x the L1 distance: rho 1 but for the noise among pairs tied in it
    assert top["rho"] > 0.95 and top["excludes_zero"]
    unrelated = table[table["factor"] == "unrelated"].iloc[0]
    assert unrelated["low"] <= 0 <= unrelated["high"], unrelated.to_dict()
    same = table[table["factor"] == "same"].iloc[0]
    why = "not identified: same or shift toward source is constant over the 20 pairs"
    assert same["problem"] == why
    assert shift_factor_problems(table) == {
        "side_effects_shift_factors: 1 constant factor(s)": "not identified: the factor or "
        "the shift is constant over the study's pairs, nothing to correlate (same)"
    }


def test_a_small_study_is_too_small_to_tell_and_says_so() -> None:
    three = {m: POSITIVE[m] for m in "ABC"}
    shift = _shift()
    shift = shift[shift["source"].isin(three) & shift["target"].isin(three)]
    factors = _factors()
    factors = factors[factors["source"].isin(three) & factors["target"].isin(three)]
    table = shift_factor_table(shift, _shares(three), factors, n_boot=50)
    assert table["rank"].isna().all()
    problems = shift_factor_problems(table)
    assert list(problems) == ["side_effects_shift_factors: class_distribution_l1, unrelated"]
    assert "too small to tell: 6 pairs" in next(iter(problems.values()))


def test_bad_frames_are_refused_naming_the_frame() -> None:
    with pytest.raises(SoiInputError, match="shares: expected member, label_name, share"):
        source_class_shift(_shift(), pd.DataFrame({"member": ["A"]}))
    with pytest.raises(SoiInputError, match="shift: expected prediction_shift's columns"):
        source_class_shift(pd.DataFrame({"seed": [0]}), _shares(POSITIVE))
