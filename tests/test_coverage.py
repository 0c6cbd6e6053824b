"""Examples visited zero, one or several times in an epoch: nothing is dropped silently.

Under uniform or temperature sampling an epoch visits a large member only partly and a
small one several times. An epoch's trace holds the last visit; an example not visited
has no observation for that epoch; SOI and cartography use the observed epochs, with a
stated minimum; coverage is reported per member.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from reference import example_dynamics, example_soi
from tracehelp import log_synthetic_run, small_config

from soi_mlflow.analysis import soi_table
from soi_mlflow.analysis.matrix import TraceMatrix
from soi_mlflow.analysis.report import coverage_table
from soi_mlflow.analysis.runs import cache_for, soi_frame
from soi_mlflow.analysis.soi import TOO_FEW
from soi_mlflow.cli import main

# None: not visited in that epoch
VISITS = {
    1: [1, 1, 1, 1],  # every epoch
    2: [None, 0, None, 1],  # twice: wrong, then right -> learned late
    3: [1, None, 0, None],  # twice: forgotten
    4: [None, None, 1, None],  # once: too few epochs to say anything
    5: [0, 1, None, 0],
}


def _long_frame(visits: dict[int, list]) -> pd.DataFrame:
    rows = []
    for i, seq in visits.items():
        for e, c in enumerate(seq):
            if c is not None:
                rows.append(
                    {
                        "example_id": i,
                        "epoch": e,
                        "member": "m",
                        "gold": 0,
                        "pred": 0 if c else 1,
                        "p_gold": 0.8 if c else 0.2,
                    }
                )
    return pd.DataFrame(rows)


def test_examples_missing_from_some_epochs_are_kept_with_their_observations() -> None:
    tm = TraceMatrix.from_frame(_long_frame(VISITS))
    assert tm.example_id.tolist() == [1, 2, 3, 4, 5]
    assert tm.n_observed.tolist() == [4, 2, 2, 1, 3]
    frame = soi_frame(tm)
    soi = dict(zip(frame["example_id"], frame["soi"].astype(str), strict=True))
    assert soi == {
        1: "always_correct",
        2: "late_learned",  # first correct at epoch 4 > split 2
        3: "forgotten",
        4: TOO_FEW,
        5: "forgotten",
    }
    row = frame.set_index("example_id")
    assert row.loc[2, "confidence"] == pytest.approx(0.5) and row.loc[2, "correctness"] == 0.5
    assert row.loc[3, "forgetting_events"] == 1 and row.loc[5, "forgetting_events"] == 1
    assert np.isnan(row.loc[4, "confidence"])  # below the minimum: no cartography either
    assert row["n_observed"].tolist() == [4, 2, 2, 1, 3]


def test_the_last_visit_within_an_epoch_counts() -> None:
    frame = _long_frame({1: [0, 0], 2: [1, 1]})
    later = frame.iloc[[0]].assign(pred=0, p_gold=0.9)  # example 1 seen again in epoch 0
    tm = TraceMatrix.from_frame(pd.concat([frame, later], ignore_index=True))
    assert tm.n_examples == 2 and tm.correct[0].tolist() == [True, True]
    assert tm.p_gold[0, 0] == pytest.approx(0.9)


def test_sparse_fast_code_equals_the_reference_exactly() -> None:
    rng = np.random.default_rng(1)
    n, e = 2000, 6
    p = rng.random((n, e)).astype(np.float32)
    correct = rng.random((n, e)) < 0.6
    seen = rng.random((n, e)) < 0.6
    rows = [
        {
            "example_id": i,
            "epoch": k,
            "member": "m",
            "gold": 0,
            "pred": int(not correct[i, k]),
            "p_gold": p[i, k],
        }
        for i, k in itertools.product(range(n), range(e))
        if seen[i, k]
    ]
    fast = soi_frame(TraceMatrix.from_frame(pd.DataFrame(rows))).set_index("example_id")
    for i in fast.index:
        obs_p = [float(p[i, k]) if seen[i, k] else None for k in range(e)]
        obs_c = [bool(correct[i, k]) if seen[i, k] else None for k in range(e)]
        ref = example_dynamics(obs_p, obs_c)
        for key, value in ref.items():
            got = fast.loc[i, key]
            assert got == value or (np.isnan(got) and np.isnan(value)), (i, key)
        assert fast.loc[i, "soi"] == example_soi(obs_c), i


def test_examples_never_traced_are_reported_not_dropped(store) -> None:
    visits = {1: [1, 1, 1], 2: [0, None, 1], 3: [None, 1, None], 4: [0, 0, 0]}
    members = {1: "big", 2: "big", 3: "big", 4: "small"}
    run = log_synthetic_run(store, visits, members, extra_examples={9: "big"})
    table = soi_table(run, tracking_uri=store).set_index("example_id")
    assert sorted(table.index) == [1, 2, 3, 4, 9]
    assert table.loc[9, "n_observed"] == 0 and table.loc[9, "soi"] == TOO_FEW
    cov = coverage_table(table.reset_index())
    assert cov.loc["big", "examples"] == 4 and cov.loc["big", "analysed"] == 2
    assert cov.loc["big", "coverage"] == 0.5 and cov.loc["small", "coverage"] == 1.0
    assert cov.loc["big", "never_observed"] == 1


def test_analyze_run_reports_coverage_as_metric_table_and_text(store, capsys) -> None:
    visits = {1: [1, 1, 1], 2: [0, None, 1], 3: [None, 1, None], 4: [0, 0, 0]}
    members = {1: "big", 2: "big", 3: "big", 4: "small"}
    run = log_synthetic_run(store, visits, members)
    capsys.readouterr()
    assert main(["analyze", "--run-id", run, "--tracking-uri", store]) == 0
    metrics = MlflowClient(store).get_run(run).data.metrics
    assert metrics["soi/train/big/coverage"] == pytest.approx(2 / 3)
    assert metrics["soi/train/small/coverage"] == 1.0
    assert metrics["soi/train/coverage"] == pytest.approx(3 / 4)
    logged = pd.read_parquet(cache_for(store).file(run, "tables/soi_fractions_train.parquet"))
    assert logged.loc["big", "coverage"] == pytest.approx(2 / 3, abs=1e-4)
    assert logged.loc["big", TOO_FEW] == pytest.approx(1 / 3, abs=1e-4)
    assert logged.loc["all", "analysed"] == 3
    text = capsys.readouterr().out  # what the command prints: the coverage table
    assert "train: coverage" in text
    assert re.search(r"^big\s+3\s+2\s+0\.667\s+0\s", text, re.MULTILINE)


@pytest.mark.e2e
def test_uniform_sampling_keeps_every_example_of_a_large_member(store) -> None:
    from soi_mlflow.data.mixture import Mixture
    from soi_mlflow.training import train

    config = small_config(store, ("books", "movies"), max_examples=96, epochs=3)
    config.mixture = replace(
        config.mixture, sampling="uniform", member_max_examples=(("movies", 24),)
    )

    run = train(config).run_id
    mixture = Mixture(config.mixture)
    ids = np.asarray(mixture.train["example_id"])
    seen = np.zeros(len(ids), dtype=int)
    for epoch in range(3):
        seen[np.unique(mixture.epoch_order(epoch, config.seed))] += 1
    table = soi_table(run, tracking_uri=store).set_index("example_id")
    assert len(table) == 96 + 24  # every training example, visited or not
    assert table.loc[ids, "n_observed"].tolist() == seen.tolist()
    books = coverage_table(table.reset_index()).loc["books"]
    in_books = np.asarray(mixture.train["member"]) == "books"
    assert books["analysed"] == int((seen[in_books] >= 2).sum()) > 0


def test_the_compare_summary_reports_coverage_per_member_and_setting(store) -> None:
    from soi_mlflow.analysis.report import SingleVsMultiRuns, log_single_vs_multi
    from soi_mlflow.studies.single_vs_multi import summary_rows

    full = {1: [1, 1, 1], 2: [0, 1, 1], 3: [1, 0, 1], 5: [1, 1, 1], 6: [0, 1, 1]}
    members = {1: "big", 2: "big", 3: "big", 4: "big", 5: "small", 6: "small"}
    single = {
        m: [log_synthetic_run(store, {i: s for i, s in full.items() if members[i] == m}, members)]
        for m in ("big", "small")
    }
    # in the multi run big is visited partly: 2 once (too few epochs), 4 never
    partial = {**full, 2: [0, None, None]}
    multi = log_synthetic_run(store, partial, members, extra_examples={4: "big"})
    parent = MlflowClient(store).create_run(
        MlflowClient(store).get_experiment_by_name("synthetic").experiment_id
    )
    summary = log_single_vs_multi(
        parent.info.run_id, SingleVsMultiRuns(single, [multi]), tracking_uri=store
    )
    assert summary.loc["big", "coverage_single"] == 1.0
    assert summary.loc["big", "coverage_multi"] == pytest.approx(2 / 4)
    assert summary.loc["small", ["coverage_single", "coverage_multi"]].tolist() == [1.0, 1.0]
    logged = pd.read_parquet(cache_for(store).file(parent.info.run_id, "tables/summary.parquet"))
    assert logged.loc["big", "coverage_multi"] == pytest.approx(0.5)
    columns, rows = summary_rows(summary)
    assert columns[-1] == "cover-\nage" and rows[1][-1] == pytest.approx(0.5)  # big, multi
