"""The analysis on runs soi-mlflow did not train: traces from TraceRecorder, no soi.* study
tags, free split names; SOI, transitions and the comparison of any two runs."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from tracehelp import scratch_store

from soi_mlflow import TraceRecorder
from soi_mlflow.analysis import compare_runs, soi_table, transitions
from soi_mlflow.analysis.report import analyze_run
from soi_mlflow.cli import main as cli_main
from soi_mlflow.errors import SoiInputError

# correctness over 3 epochs -> SOI under the default taxonomy (split epoch = 2)
PATTERNS = {
    "always_correct": (1, 1, 1),
    "never_learned": (0, 0, 0),
    "early_learned": (0, 1, 1),
    "late_learned": (0, 0, 1),
    "forgotten": (1, 0, 0),
    "relearned": (1, 0, 1),
}
NAMES = list(PATTERNS)


def record_run(
    uri: str, soi_of: dict[int, str], splits: tuple[str, ...] = ("train",), name: str = "run"
) -> str:
    """A user's run: a plain loop feeding the recorder logits whose correctness over the
    epochs follows ``PATTERNS[soi_of[id]]``; the gold label is ``id % 2``."""
    ids = np.array(sorted(soi_of), dtype=np.int64)
    gold = ids % 2
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(run_name=name) as run, TraceRecorder(label_names=["neg", "pos"]) as rec:
        for epoch in range(3):
            right = np.array([PATTERNS[soi_of[i]][epoch] for i in ids], dtype=bool)
            pred = np.where(right, gold, 1 - gold)
            logits = np.zeros((len(ids), 2), dtype=np.float32)
            logits[np.arange(len(ids)), pred] = 1.5
            for split in splits:
                for part in np.array_split(np.arange(len(ids)), 3):  # three batches
                    rec.add(split, ids[part], logits[part], gold[part])
            rec.end_epoch()
    return run.info.run_id


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    # ids 0..59: in A the SOI cycles through NAMES; in B it is the next name in the cycle.
    # A also has ids 100..104 that B lacks, B has 200..201 that A lacks.
    soi_a = {i: NAMES[i % 6] for i in range(60)} | {100 + k: "always_correct" for k in range(5)}
    soi_b = {i: NAMES[(i + 1) % 6] for i in range(60)} | {200: "forgotten", 201: "forgotten"}
    with scratch_store(tmp_path_factory, "foreign") as store:
        run_a = record_run(store, soi_a, ("train", "dev_matched"), "baseline")
        run_b = record_run(store, soi_b, ("train",), "with-aux")
        yield store, run_a, run_b, soi_a, soi_b


def test_soi_table_and_transitions_on_recorder_runs(two_runs) -> None:
    uri, run_a, run_b, soi_a, _ = two_runs
    tags = MlflowClient(uri).get_run(run_a).data.tags
    assert not {"soi.axis", "soi.setting", "soi.study", "soi.members"} & set(tags)
    table = soi_table(run_a, tracking_uri=uri)
    got = dict(zip(table["example_id"], table["soi"].astype(str), strict=True))
    assert got == soi_a
    dev = soi_table(run_a, "dev_matched", tracking_uri=uri)  # a split name of the user's
    assert dict(zip(dev["example_id"], dev["soi"].astype(str), strict=True)) == soi_a
    counts = transitions(run_a, run_b, tracking_uri=uri)
    for k, name in enumerate(NAMES):
        row = counts.loc[name]
        assert row[NAMES[(k + 1) % 6]] == 10 and row.sum() == 10
    assert counts.attrs["coverage"]["only_a"] == 5 and counts.attrs["coverage"]["only_b"] == 2


def test_compare_runs_logs_a_new_comparison_run_or_into_run_b(two_runs) -> None:
    uri, run_a, run_b, _, _ = two_runs
    client = MlflowClient(uri)
    result = compare_runs(run_a, run_b, tracking_uri=uri)
    assert result.run_id not in (run_a, run_b)
    made = client.get_run(result.run_id)
    assert made.info.status == "FINISHED"
    assert made.data.tags["soi.compare.run_a"] == run_a
    assert made.data.tags["soi.compare.run_b"] == run_b
    assert made.info.experiment_id == client.get_run(run_b).info.experiment_id
    assert made.data.metrics["compare/train/matched"] == 60
    assert made.data.metrics["compare/train/a/always_correct_frac"] == pytest.approx(15 / 65)
    figures = {a.path for a in client.list_artifacts(result.run_id, "figures")}
    assert figures == {
        "figures/transitions_train.png",
        "figures/datamap_train_a.png",
        "figures/datamap_train_b.png",
    }
    assert (result.counts.to_numpy().diagonal() == 0).all()  # every example moved on
    into_b = compare_runs(run_a, run_b, into="b", tracking_uri=uri)
    assert into_b.run_id == run_b
    assert "figures/transitions_train_from_baseline.png" in {
        a.path for a in client.list_artifacts(run_b, "figures")
    }
    assert into_b.counts.equals(result.counts)
    assert cli_main(["analyze", "--compare", f"{run_a},{run_b}", "--tracking-uri", uri]) == 0


def test_analyze_run_id_on_a_recorder_run(two_runs, capsys) -> None:
    uri, run_a, _, _, _ = two_runs
    assert cli_main(["analyze", "--run-id", run_a, "--tracking-uri", uri]) == 0
    assert "train: SOI fractions of 65 examples" in capsys.readouterr().out
    tables = analyze_run(run_a, ["dev_matched"], tracking_uri=uri)
    assert len(tables["dev_matched"]) == 65
    paths = {a.path for a in MlflowClient(uri).list_artifacts(run_a, "figures")}
    assert {"figures/datamap_train.png", "figures/datamap_dev_matched.png"} <= paths


def test_bad_comparisons_are_refused_before_logging(two_runs) -> None:
    uri, run_a, run_b, _, _ = two_runs
    other = record_run(uri, {10_000 + i: "forgotten" for i in range(6)}, name="other-data")
    experiments = [e.experiment_id for e in MlflowClient(uri).search_experiments()]
    before = len(MlflowClient(uri).search_runs(experiments))
    with pytest.raises(SoiInputError, match="share no example_id"):
        compare_runs(run_a, other, tracking_uri=uri)
    with pytest.raises(SoiInputError, match="two different runs"):
        compare_runs(run_a, run_a, tracking_uri=uri)
    with pytest.raises(SoiInputError, match="split name '../x'"):
        compare_runs(run_a, run_b, "../x", tracking_uri=uri)
    with pytest.raises(SoiInputError, match="no traces of split 'dev_matched'"):
        compare_runs(run_a, run_b, "dev_matched", tracking_uri=uri)
    with pytest.raises(SoiInputError, match="run_b: no run 'nope'"):
        compare_runs(run_a, "nope", tracking_uri=uri)
    with pytest.raises(SoiInputError, match="into: expected"):
        compare_runs(run_a, run_b, into="a", tracking_uri=uri)
    assert len(MlflowClient(uri).search_runs(experiments)) == before
