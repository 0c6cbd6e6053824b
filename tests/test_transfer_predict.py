"""Predicting transfer and recommending auxiliary members (analysis/transfer_predict.py)
on hand-built frames whose answer is known."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from soi_mlflow.analysis.transfer_predict import (
    PREDICTOR,
    ROW_MEAN,
    SIMILARITY_ONLY,
    cross_predictions,
    evaluate,
    predict,
    recommend,
)
from soi_mlflow.errors import SoiInputError

MEMBERS = [f"m{i}" for i in range(6)]


def _study(t_of, seeds=3, noise=0.0, rng=None):
    """Deltas (every ordered pair of MEMBERS, ``seeds`` seeds) with T = ``t_of(i, j)``."""
    rng = rng or np.random.default_rng(0)
    rows = []
    for (i, a), (j, b) in itertools.permutations(enumerate(MEMBERS), 2):
        for s in range(seeds):
            rows.append((s, a, b, t_of(i, j) + noise * rng.normal(), None))
    return pd.DataFrame(rows, columns=["seed", "source", "target", "delta", "problem"])


def _factors(values, similarity=None):
    """pair_factors-shaped: one pair factor ``key`` and optional ``tfidf_cosine``."""
    rows = []
    for (i, a), (j, b) in itertools.permutations(enumerate(MEMBERS), 2):
        row = {"source": a, "target": b, "key": values[i, j]}
        if similarity is not None:
            row["tfidf_cosine"] = similarity[i, j]
        rows.append(row)
    return pd.DataFrame(rows)


def test_a_factor_that_determines_t_is_predicted_far_better_than_the_baselines():
    rng = np.random.default_rng(1)
    key = rng.normal(size=(6, 6))
    sim = rng.normal(size=(6, 6))
    deltas = _study(lambda i, j: 0.1 * key[i, j])
    table = evaluate(deltas, _factors(key, sim)).set_index(["scheme", "model"])
    ours = table.loc[("leave one pair out", PREDICTOR)]
    for base in (ROW_MEAN, SIMILARITY_ONLY):
        other = table.loc[("leave one pair out", base)]
        assert ours["mae"] < 0.2 * other["mae"]
        assert other["verdict"] == f"beats {base}"
        assert other["diff_high"] < 0
    assert ours["rho"] > 0.95 and ours["n"] == 30
    loso = table.loc[("leave one source out", ROW_MEAN)]
    assert loso["verdict"] == f"beats {ROW_MEAN}"


def test_pure_noise_factors_do_not_beat_the_row_mean():
    rng = np.random.default_rng(2)
    row = rng.normal(size=6)
    deltas = _study(lambda i, j: row[i], noise=0.05, rng=rng)  # T is the source's own level
    factors = _factors(rng.normal(size=(6, 6)), rng.normal(size=(6, 6)))
    for k in range(10):
        factors[f"noise{k}"] = rng.normal(size=len(factors))
    table = evaluate(deltas, factors).set_index(["scheme", "model"])
    verdict = table.loc[("leave one pair out", ROW_MEAN), "verdict"]
    assert verdict == f"does not beat {ROW_MEAN}"
    assert (
        table.loc[("leave one pair out", PREDICTOR), "mae"]
        > table.loc[("leave one pair out", ROW_MEAN), "mae"]
    )


def test_row_mean_baseline_is_the_sources_other_targets_and_global_when_left_out():
    t = np.arange(36, dtype=float).reshape(6, 6)
    deltas = _study(lambda i, j: t[i, j], seeds=1)
    held = cross_predictions(deltas, _factors(t), "pair").set_index(["source", "target"])
    others = [t[0, j] for j in (2, 3, 4, 5)]
    assert held.loc[("m0", "m1"), ROW_MEAN] == pytest.approx(np.mean(others))
    by_source = cross_predictions(deltas, _factors(t), "source").set_index(["source", "target"])
    rest = [t[i, j] for i in range(1, 6) for j in range(6) if i != j]
    assert by_source.loc[("m0", "m1"), ROW_MEAN] == pytest.approx(np.mean(rest))
    assert by_source[SIMILARITY_ONLY].isna().all()  # no similarity columns


def test_without_similarity_columns_the_baseline_is_not_available():
    key = np.random.default_rng(3).normal(size=(6, 6))
    table = evaluate(_study(lambda i, j: key[i, j]), _factors(key))
    sim = table[table["model"] == SIMILARITY_ONLY]
    assert (sim["verdict"] == "not available").all()
    assert sim["problem"].str.contains("similarity").all()


def test_few_pairs_are_too_small_to_tell():
    deltas = _study(lambda i, j: i - j, seeds=1)
    deltas = deltas[deltas["source"].isin(["m0", "m1"]) & deltas["target"].isin(["m0", "m1"])]
    key = np.random.default_rng(4).normal(size=(6, 6))
    table = evaluate(deltas, _factors(key))
    row = table[(table["model"] == ROW_MEAN) & (table["scheme"] == "leave one pair out")]
    assert row["verdict"].iloc[0] == "too small to tell"


def test_predict_gives_an_interval_around_the_prediction():
    key = np.random.default_rng(5).normal(size=(6, 6))
    deltas = _study(lambda i, j: key[i, j], noise=0.1)
    deltas = deltas[~((deltas["source"] == "m0") & (deltas["target"] == "m1"))]
    out = predict(deltas, _factors(key), pd.DataFrame({"source": ["m0"], "target": ["m1"]}))
    r = out.iloc[0]
    assert r["low"] < r["predicted"] < r["high"]
    assert abs(r["predicted"] - key[0, 1]) < 0.5
    assert r["model"] == PREDICTOR and r["n"] == 29


def test_recommend_lists_measured_cells_first_and_marks_predicted_ones():
    key = np.random.default_rng(6).normal(size=(6, 6))
    key[4, 0], key[5, 0] = 5.0, 4.0  # m4, m5 would help m0 most, but are not measured
    deltas = _study(lambda i, j: key[i, j], noise=0.05)
    deltas = deltas[~(deltas["source"].isin(["m4", "m5"]) & (deltas["target"] == "m0"))]
    out = recommend("m0", deltas, _factors(key))
    assert list(out["evidence"][:3]) == ["measured"] * 3
    assert (out["evidence"][3:] == f"predicted ({PREDICTOR})").all()
    assert set(out["candidate"][3:]) == {"m4", "m5"}
    measured = out[out["evidence"] == "measured"]
    assert list(measured["gain"]) == sorted(measured["gain"], reverse=True)
    assert (measured["n_seeds"] == 3).all() and (measured["low"] < measured["high"]).all()
    assert set(out.loc[out["rank"] <= 2, "candidate"]) == {"m4", "m5"}  # ranked by gain


def test_recommend_without_factors_uses_the_row_mean_and_restricts_candidates():
    deltas = _study(lambda i, j: float(i), seeds=2)
    deltas = deltas[~((deltas["source"] == "m3") & (deltas["target"] == "m0"))]
    out = recommend("m0", deltas, None, candidates=["m3", "m1"])
    assert list(out["candidate"]) == ["m1", "m3"]
    assert out.iloc[1]["evidence"] == f"predicted ({ROW_MEAN})"
    assert out.iloc[1]["gain"] == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("target", "candidates", "flag"),
    [("nope", None, "--target"), ("m0", ["m1", "zz"], "--candidates"), ("m0", ["m0"], "--cand")],
)
def test_recommend_refuses_bad_input_naming_the_flag(target, candidates, flag):
    deltas = _study(lambda i, j: 0.0, seeds=1)
    with pytest.raises(SoiInputError, match=flag):
        recommend(target, deltas, None, candidates)


def test_a_held_out_source_far_outside_the_training_factors_is_not_extrapolated():
    # a source factor the other sources barely vary (binary members' class entropy, ~1.0)
    # and the held-out source has far from it (a 3-class member, 1.58): ~570 std off
    rng = np.random.default_rng(2)
    key = rng.normal(size=(6, 6))
    entropy = np.array([1.0, 1.0 + 1e-3, 1.0 - 1e-3, 1.0 + 2e-3, 1.0, 1.585])
    deltas = _study(lambda i, j: 0.1 * key[i, j], noise=0.01)
    factors = _factors(key)
    factors["source.class_entropy"] = factors["source"].map(
        dict(zip(MEMBERS, entropy, strict=True))
    )
    held = cross_predictions(deltas, factors, "source")
    # every prediction stays within what the training pairs' factors can give
    assert held[PREDICTOR].abs().max() < 1.0
    odd = held[held["source"] == MEMBERS[5]]
    assert np.abs(odd[PREDICTOR] - odd["T"]).mean() < 0.1
