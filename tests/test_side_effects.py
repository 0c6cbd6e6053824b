"""Side effects on confusion matrices (analysis/side_effects.py), on hand-built
predictions whose answers are known, and the wrapper against a real MLflow store."""

from __future__ import annotations

import pandas as pd
import pytest
from mlflow import MlflowClient
from scipy.stats import t as student_t

from soi_mlflow.analysis.side_effects import (
    confusion_deltas,
    log_side_effects,
    named_predictions,
    prediction_shift,
    study_predictions,
    summarize_shift,
    summarize_side_effects,
)
from soi_mlflow.tracking.run import ensure_experiment


def _rows(seed, source, target, gold, pred):
    return pd.DataFrame(
        {
            "seed": seed,
            "source": source,
            "target": target,
            "example_id": range(len(gold)),
            "gold": gold,
            "pred": pred,
        }
    )


GOLD = ["neg", "neg", "pos", "pos"]


def _pushed(seed=0, flipped=2):
    """Alone: every prediction right; with ``s``: the first ``flipped`` neg ones -> pos."""
    with_ = ["pos"] * flipped + ["neg"] * (2 - flipped) + ["pos", "pos"]
    return pd.concat([_rows(seed, None, "t", GOLD, GOLD), _rows(seed, "s", "t", GOLD, with_)])


def _cell(frame, gold, pred, column):
    row = frame[(frame["gold"] == gold) & (frame["pred"] == pred)]
    assert len(row) == 1
    return float(row[column].iloc[0])


def test_a_source_pushing_every_prediction_to_one_class() -> None:
    confusion = confusion_deltas(_pushed())
    assert len(confusion) == 4 and confusion["problem"].isna().all()
    expected = {  # (gold, pred): count alone, with, delta; rate alone, with, delta
        ("neg", "neg"): (2, 0, -2, 1.0, 0.0, -1.0),
        ("neg", "pos"): (0, 2, 2, 0.0, 1.0, 1.0),
        ("pos", "neg"): (0, 0, 0, 0.0, 0.0, 0.0),
        ("pos", "pos"): (2, 2, 0, 1.0, 1.0, 0.0),
    }
    columns = ["count_alone", "count_with", "count_delta", "rate_alone", "rate_with", "rate_delta"]
    for (gold, pred), values in expected.items():
        assert [_cell(confusion, gold, pred, c) for c in columns] == list(values), (gold, pred)
    shift = prediction_shift(confusion).set_index("pred")
    assert shift.loc["pos", "share_alone"] == 0.5 and shift.loc["pos", "share_with"] == 1.0
    assert shift.loc["pos", "shift"] == 0.5 and shift.loc["neg", "shift"] == -0.5
    assert (shift["examples"] == 4).all()


def test_intervals_over_three_seeds() -> None:
    frames = [_pushed(seed, flipped) for seed, flipped in ((0, 2), (1, 1), (2, 0))]
    confusion = confusion_deltas(pd.concat(frames))
    summary = summarize_side_effects(confusion)
    cell = summary[(summary["gold"] == "neg") & (summary["pred"] == "pos")].iloc[0]
    half = student_t.ppf(0.975, 2) * 0.5 / 3**0.5  # deltas 1, 0.5, 0: sd 0.5
    assert cell["mean"] == pytest.approx(0.5) and cell["seeds"] == 3
    assert cell["low"] == pytest.approx(0.5 - half) and cell["high"] == pytest.approx(0.5 + half)
    assert not cell["significant"] and cell["rate_alone"] == 0.0
    assert cell["rate_with"] == pytest.approx(0.5) and cell["method"] == "t, 95% over seeds"
    unchanged = summary[(summary["gold"] == "pos") & (summary["pred"] == "pos")].iloc[0]
    assert unchanged["mean"] == 0.0 and unchanged["low"] == 0.0 and unchanged["problem"] is None
    shift = summarize_shift(prediction_shift(confusion)).set_index("pred")
    assert shift.loc["pos", "mean"] == pytest.approx(0.25)  # shifts 0.5, 0.25, 0
    assert shift.loc["pos", "high"] == pytest.approx(0.25 + half / 2)
    boot = summarize_side_effects(confusion, method="bootstrap")
    assert (boot["method"] == "bootstrap, 95% over seeds").all()


def test_a_target_whose_label_names_differ_between_runs() -> None:
    # alone: a head of two classes; with the source: a shared head that orders them
    # differently and adds one; by name, the same predictions: no side effect
    alone = pd.DataFrame(
        {
            "example_id": [1, 2, 3],
            "member": ["t", "t", "t"],
            "task": ["own", "own", "own"],
            "gold": [0, 1, 1],
            "pred": [0, 1, 0],
        }
    )
    shared = alone.assign(task="shared", gold=[1, 0, 0], pred=[1, 0, 1])
    other = pd.DataFrame(
        {"example_id": [9], "member": ["s"], "task": ["shared"], "gold": [2], "pred": [7]}
    )
    a = named_predictions(alone, "t", {"own": ["neg", "pos"]})
    w = named_predictions(pd.concat([shared, other]), "t", {"shared": ["pos", "neg", "neutral"]})
    assert list(a["gold"]) == ["neg", "pos", "pos"] and list(w["pred"]) == ["neg", "pos", "neg"]
    assert list(named_predictions(other, "s", {"shared": ["pos", "neg", "neutral"]})["pred"]) == [
        "7"
    ]  # an index without a name keeps its number
    predictions = pd.concat(
        [a.assign(seed=0, source=None, target="t"), w.assign(seed=0, source="s", target="t")]
    )
    confusion = confusion_deltas(predictions, classes={"t": ["pos", "neg", "neutral"]})
    assert list(dict.fromkeys(confusion["gold"])) == ["pos", "neg", "neutral"]
    assert (confusion["count_delta"] == 0).all()
    assert _cell(confusion, "pos", "neg", "count_alone") == 1
    assert pd.isna(_cell(confusion, "neutral", "neutral", "rate_alone"))  # no such example
    summary = summarize_side_effects(confusion)
    assert summary["problem"].isna().all()  # a class without examples is not a problem


def test_only_examples_both_runs_predicted_count() -> None:
    alone = _rows(0, None, "t", GOLD, GOLD)
    with_ = _rows(0, "s", "t", GOLD[:3], ["pos", "pos", "pos"])
    confusion = confusion_deltas(pd.concat([alone, with_]))
    assert (confusion["examples"] == 3).all()
    assert _cell(confusion, "pos", "pos", "count_alone") == 1


def test_missing_runs_are_problem_rows_not_crashes() -> None:
    runs = pd.DataFrame(
        {
            "seed": [0, 0, 0, 0],
            "source": [None, "s", None, "t"],
            "target": ["t", "t", "s", "s"],
            "run_id": [None, None, float("nan"), None],
        }
    )
    predictions, missing, classes = study_predictions(runs)
    assert predictions.empty and len(missing) == 4 and classes == {}
    confusion = confusion_deltas(predictions, missing)
    assert len(confusion) == 2 and confusion["problem"].str.startswith("not identified: ").all()
    assert confusion["problem"].str.contains("no run").all()
    summary = summarize_side_effects(confusion)
    assert len(summary) == 2 and summary["problem"].notna().all()
    # the target alone is there, the pair's run is not
    partial = confusion_deltas(_rows(1, None, "t", GOLD, GOLD), missing.assign(seed=1))
    why = partial.set_index("source").loc["s", "problem"]
    assert "no run" in why
    lone = confusion_deltas(_rows(0, "s", "t", GOLD, GOLD))
    assert lone["problem"].iloc[0] == "not identified: no predictions of t trained alone (seed 0)"
    assert len(prediction_shift(lone)) == 1


def test_log_side_effects_reports_runs_without_traces(store) -> None:
    client = MlflowClient(store)
    exp = ensure_experiment(client, "side-effects")
    parent = client.create_run(exp).info.run_id
    bare = client.create_run(exp).info.run_id  # a run with no test traces
    runs = pd.DataFrame(
        {"seed": [0, 0], "source": [None, "s"], "target": ["t", "t"], "run_id": [bare, bare]}
    )
    problems = log_side_effects(client, parent, runs, store)
    assert len(problems) == 1
    ((where, why),) = problems.items()
    assert where.startswith("side_effects_summary: source=s, target=t")
    assert f"run {bare} has no traces of split 'test'" in why
    tables = {a.path for a in client.list_artifacts(parent, "tables")}
    for name in ("side_effects_confusion", "side_effects_summary", "side_effects_prediction_shift"):
        assert {f"tables/{name}.parquet", f"tables/{name}.json"} <= tables
    assert not client.list_artifacts(parent, "figures")  # nothing measured: no figure
