"""Label-noise detector scores and their metrics, on cases whose answers are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from soi_mlflow.analysis.noise import (
    auroc,
    average_precision,
    detector_scores,
    precision_at_k,
    score_detectors,
)
from soi_mlflow.errors import SoiInputError

TRUTH = np.array([1, 1, 0, 0, 0], dtype=bool)


def test_perfect_and_inverted_scores() -> None:
    perfect = np.array([0.9, 0.8, 0.1, 0.2, 0.3])
    assert auroc(perfect, TRUTH) == 1.0
    assert average_precision(perfect, TRUTH) == 1.0
    assert precision_at_k(perfect, TRUTH) == 1.0
    inverted = -perfect
    assert auroc(inverted, TRUTH) == 0.0
    assert precision_at_k(inverted, TRUTH) == 0.0
    # noisy examples at ranks 4 and 5: AP = 1/2 * 1/4 + 1/2 * 2/5
    assert average_precision(inverted, TRUTH) == pytest.approx(0.325)


def test_hand_computed_average_precision_auroc_and_precision_at_k() -> None:
    # ranked: noisy, clean, noisy, clean, clean, noisy
    score = np.array([6, 5, 4, 3, 2, 1], dtype=float)
    truth = np.array([1, 0, 1, 0, 0, 1], dtype=bool)
    assert average_precision(score, truth) == pytest.approx((1 + 2 / 3 + 3 / 6) / 3)
    # pairs (noisy above clean): 3 + 2 + 0 of 9
    assert auroc(score, truth) == pytest.approx(5 / 9)
    assert precision_at_k(score, truth) == pytest.approx(2 / 3)
    assert precision_at_k(score, truth, k=1) == 1.0


def test_ties_are_shared() -> None:
    flat = np.zeros(5)
    assert auroc(flat, TRUTH) == 0.5
    assert average_precision(flat, TRUTH) == pytest.approx(0.4)  # the base rate
    assert precision_at_k(flat, TRUTH) == pytest.approx(0.4)
    # a flag that catches one of two noisy examples and one clean one
    flag = np.array([1, 0, 1, 0, 0], dtype=float)
    assert precision_at_k(flag, TRUTH) == pytest.approx(0.5)
    # threshold 1: recall 1/2 at precision 1/2; threshold 0: recall 1 at precision 2/5
    assert average_precision(flag, TRUTH) == pytest.approx(0.5 * 0.5 + 0.5 * 0.4)
    assert auroc(flag, TRUTH) == pytest.approx((1 * 2 + 0.5 * 1 + 0 + 0.5 * 2) / 6)


def test_random_scores_score_as_chance_and_agree_with_scikit_learn() -> None:
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(0)
    truth = rng.random(20_000) < 0.1
    score = rng.random(20_000)
    assert abs(auroc(score, truth) - 0.5) < 0.02
    assert abs(average_precision(score, truth) - truth.mean()) < 0.02
    tied = rng.integers(0, 5, 2000).astype(float)  # many ties
    t = rng.random(2000) < 0.3
    assert auroc(tied, t) == pytest.approx(roc_auc_score(t, tied))
    assert average_precision(tied, t) == pytest.approx(average_precision_score(t, tied))


def test_bad_input_is_refused() -> None:
    with pytest.raises(SoiInputError, match="must be equal"):
        auroc(np.zeros(3), TRUTH)
    with pytest.raises(SoiInputError, match="NaN"):
        average_precision(np.array([np.nan, 0, 0, 0, 0]), TRUTH)
    assert np.isnan(auroc(np.zeros(5), np.zeros(5, dtype=bool)))


def _trace(p: dict[int, list[float]], pred_right: dict[int, list[bool]], margin=None):
    rows = []
    for eid, ps in p.items():
        for e, (pg, right) in enumerate(zip(ps, pred_right[eid], strict=True)):
            row = {
                "example_id": eid,
                "epoch": e,
                "step": e,
                "member": "m",
                "task": "t",
                "gold": 1,
                "pred": 1 if right else 0,
                "p_gold": pg,
                "loss": -np.log(pg),
            }
            if margin is not None:
                row["margin"] = margin[eid][e]
            rows.append(row)
    return pd.DataFrame(rows)


P = {1: [0.9, 0.95, 0.99], 2: [0.2, 0.1, 0.3], 3: [0.6, 0.7, 0.4]}
RIGHT = {1: [True, True, True], 2: [False, False, False], 3: [True, True, False]}


def test_detector_scores_on_a_hand_made_trace() -> None:
    margin = {1: [2.0, 3.0, 4.0], 2: [-1.0, -2.0, -3.0], 3: [0.5, 1.0, -0.3]}
    scores = detector_scores(_trace(P, RIGHT, margin)).set_index("example_id")
    assert scores.loc[1, "confidence"] == pytest.approx(1 - (0.9 + 0.95 + 0.99) / 3, abs=1e-6)
    assert scores["aum"].to_dict() == pytest.approx({1: -3.0, 2: 2.0, 3: -0.4})
    # example 2 was never learned: forgotten infinitely often (Toneva et al.), so above
    # any learned example
    assert scores["forgetting"].to_dict() == {1: 0, 2: np.inf, 3: 1}
    assert scores["soi_flag"].to_dict() == {1: 0, 2: 1, 3: 1}  # never_learned, forgotten


def test_aum_of_a_binary_task_without_margins_is_the_mean_log_odds() -> None:
    trace = _trace(P, RIGHT)
    assert detector_scores(trace)["aum"].isna().all()  # not derivable: task not binary
    scores = detector_scores(trace, binary_tasks={"t"}).set_index("example_id")
    p = np.array(P[3])
    assert scores.loc[3, "aum"] == pytest.approx(-np.mean(np.log(p / (1 - p))), rel=1e-4)
    table = score_detectors(scores.drop(columns="member"), np.array([False, True, True]))
    assert table.loc["confidence", "auroc"] == 1.0
    assert table.loc["aum", "ap"] == 1.0
    assert table["base_rate"].iloc[0] == pytest.approx(2 / 3)


def test_confident_learning_flags_confidently_contradicted_labels() -> None:
    from soi_mlflow.analysis.noise import confident_learning

    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 200)
    probs = np.where(labels[:, None] == np.arange(2), 0.9, 0.1)  # the model agrees...
    wrong = np.arange(0, 200, 10)  # ...except on 20 examples it confidently contradicts
    probs[wrong] = probs[wrong][:, ::-1]
    issues, score = confident_learning(labels, probs)
    assert set(np.flatnonzero(issues)) == set(wrong)
    assert average_precision(score, issues) == 1.0 and score[wrong].min() > 1.0
    with pytest.raises(SoiInputError, match="pred_probs must be"):
        confident_learning(labels, probs[:10])
