"""A two-stage study with two seeds and two selections on the tiny config: its children,
its tables and figures in the parent, its re-analysis, and a resume that trains only the
child that did not finish; and a selection empty in every seed, not identified."""

from __future__ import annotations

import pandas as pd
import pytest
from mlflow import MlflowClient
from tracehelp import load_trace, small_config

from soi_mlflow.analysis.runs import cache_for
from soi_mlflow.cli.main import main
from soi_mlflow.studies import two_stage
from soi_mlflow.studies.two_stage import TwoStageSettings

pytestmark = pytest.mark.e2e
SPECS = ("forgettable,never_learned", "top:variability:0.5")


def _fresh(store: str, run_id: str, name: str) -> pd.DataFrame:
    """``tables/<name>.parquet`` as the store holds it now: read through the artifact
    cache, which fetches what analyses log (and re-analyses log again) afresh each time."""
    return pd.read_parquet(cache_for(store).file(run_id, f"tables/{name}.parquet"))


def _settings(**kw) -> TwoStageSettings:
    return TwoStageSettings(stage2=SPECS, seeds=2, stage2_epochs=1, **kw)


def test_seeds_and_selections_give_children_intervals_migration_and_resume(store, capsys) -> None:
    base = small_config(store, ("books",), ("restaurants",), max_examples=16, eval_max_examples=16)
    result = two_stage.run(base, _settings())
    client = MlflowClient(store)
    runs = result.runs
    assert sorted(runs.loc[runs["role"] == "stage 1", "seed"]) == [0, 1]
    stage2 = runs[runs["role"] == "stage 2"]
    assert sorted(zip(stage2["seed"], stage2["selection"], strict=True)) == [
        (s, n) for s in (0, 1) for n in ("subsets:forgettable,never_learned", "top:variability:0.5")
    ]
    children = client.search_runs(
        [client.get_run(result.parent_run_id).info.experiment_id],
        f"tags.mlflow.parentRunId = '{result.parent_run_id}'",
    )
    assert {c.info.run_id for c in children} == set(runs["run_id"])
    assert result.trained == len(runs) and result.reused == 0
    by_id = {c.info.run_id: c for c in children}
    for r in runs[runs["role"] != "stage 1"].itertuples(index=False):
        tags = by_id[r.run_id].data.tags
        assert tags["soi.seed"] == str(r.seed) and tags["soi.stage"] == "2"
        stage1 = runs[(runs["role"] == "stage 1") & (runs["seed"] == r.seed)]["run_id"].iloc[0]
        assert tags["soi.stage1_run_id"] == stage1
        trace, _ = load_trace(store, r.run_id, "traces/train/epoch=000.parquet")
        assert len(trace) == r.size  # a control has its selection's size
        if r.role == "control":
            assert tags["soi.control"] == "true" and tags["soi.selection"] == f"random:{r.size}"
        else:
            assert tags["soi.selection"] == r.selection
    sizes = stage2.groupby("seed")["size"].apply(set)
    controls = runs[runs["role"] == "control"].groupby("seed")["size"].apply(set)
    assert sizes.to_dict() == controls.to_dict()  # one control per size and seed

    tables = {a.path for a in client.list_artifacts(result.parent_run_id, "tables")}
    for name in ("accuracy", "intervals", "migration"):
        assert {f"tables/two_stage_{name}.parquet", f"tables/two_stage_{name}.json"} <= tables
    figures = {a.path for a in client.list_artifacts(result.parent_run_id, "figures")}
    assert figures == {
        "figures/two_stage_accuracy.png",
        "figures/two_stage_intervals.png",
        "figures/two_stage_migration_1_subsets_forgettable_never_learned.png",
        "figures/two_stage_migration_2_top_variability_0.5.png",
    }
    cache = cache_for(store)
    logged = pd.read_parquet(cache.file(result.parent_run_id, "tables/two_stage_intervals.parquet"))
    assert set(logged["contrast"]) == {"stage 2 - stage 1", "stage 2 - control"}
    assert set(zip(logged["member"], logged["split"], strict=True)) == {
        ("books", "test"),
        ("restaurants", "ood"),
    }
    assert (logged["seeds"] == 2).all() and logged["method"].str.contains("Student t").all()
    # one row's mean is the mean of its two per-seed differences, read from the runs
    metric = {r: client.get_run(r).data.metrics["ood/restaurants/acc"] for r in runs["run_id"]}
    row = logged[
        (logged["selection"] == "top:variability:0.5")
        & (logged["contrast"] == "stage 2 - stage 1")
        & (logged["split"] == "ood")
    ].iloc[0]
    s1 = runs[runs["role"] == "stage 1"].set_index("seed")["run_id"]
    s2 = stage2[stage2["selection"] == "top:variability:0.5"].set_index("seed")["run_id"]
    diffs = [metric[s2[s]] - metric[s1[s]] for s in (0, 1)]
    assert row["mean"] == pytest.approx(sum(diffs) / 2)
    moved = pd.read_parquet(cache.file(result.parent_run_id, "tables/two_stage_migration.parquet"))
    for name, part in moved.groupby("selection"):
        chosen = stage2[stage2["selection"] == name]["size"].sum()
        assert part["examples"].sum() == chosen  # every selected example, once per seed

    assert main(["analyze", "--parent-run-id", result.parent_run_id, "--tracking-uri", store]) == 0
    out = capsys.readouterr().out
    assert "subsets:forgettable,never_learned: paired by seed" in out
    assert "top:variability:0.5: paired by seed" in out
    assert max(len(line) for line in out.splitlines()) < 100
    again = _fresh(store, result.parent_run_id, "two_stage_intervals")
    pd.testing.assert_frame_equal(again, logged)

    # a child that did not finish is the only one trained again on --resume
    lost = stage2["run_id"].iloc[-1]
    client.set_terminated(lost, "FAILED")
    resumed = two_stage.run(base, _settings(resume=result.parent_run_id))
    assert (resumed.trained, resumed.reused) == (1, len(runs) - 1)
    assert resumed.parent_run_id == result.parent_run_id
    assert lost not in set(resumed.runs["run_id"])
    assert set(resumed.runs["run_id"]) - {lost} >= set(runs["run_id"]) - {lost}


def test_a_selection_empty_in_every_seed_is_not_identified_and_the_study_finishes(
    store, capsys
) -> None:
    # after 1 stage-1 epoch no example has a forgetting event (it needs 2 epochs), so
    # `forgettable` is empty in every seed; a top fraction always selects some examples
    base = small_config(
        store, ("books",), ("restaurants",), max_examples=16, eval_max_examples=16, epochs=1
    )
    specs = ("forgettable", "top:confidence:0.5")
    result = two_stage.run(base, TwoStageSettings(stage2=specs, seeds=2, stage2_epochs=1))
    client = MlflowClient(store)
    assert client.get_run(result.parent_run_id).info.status == "FINISHED"
    out = capsys.readouterr().out
    stage1 = result.runs[result.runs["role"] == "stage 1"].set_index("seed")["run_id"]
    for seed in (0, 1):
        assert (
            f"not identified: the stage-2 selection subsets:forgettable matches no training "
            f"example of stage-1 run {stage1[seed]} (seed {seed})" in out
        )
    runs = result.runs
    assert set(runs.loc[runs["role"] == "stage 2", "selection"]) == {"top:confidence:0.5"}
    assert (runs.loc[runs["role"] == "control", "size"] == 8).all()  # top's size only
    assert len(runs) == 6  # per seed: stage 1, one stage 2, one control
    # the first selection is the dropped one: the result names the first trained one
    first = runs[runs["run_id"] == result.stage2_run_id].iloc[0]
    assert first["selection"] == "top:confidence:0.5" and result.selected == 8
    assert client.get_run(result.control_run_id).data.tags["soi.control"] == "true"
    # labelled as in a study of several selections, whatever was dropped
    assert list(result.table.columns) == [
        "stage 1",
        "stage 2 top:confidence:0.5",
        "control top:confidence:0.5",
    ]
    metrics = client.get_run(result.parent_run_id).data.metrics
    assert "summary/top_confidence_0.5/test_acc_stage2_minus_control" in metrics

    cache = cache_for(store)
    dropped = pd.read_parquet(
        cache.file(result.parent_run_id, "tables/two_stage_not_identified.parquet")
    )
    assert list(zip(dropped["selection"], dropped["seed"], strict=True)) == [
        ("subsets:forgettable", 0),
        ("subsets:forgettable", 1),
    ]
    assert list(dropped["stage1_run_id"]) == [stage1[0], stage1[1]]
    logged = pd.read_parquet(cache.file(result.parent_run_id, "tables/two_stage_intervals.parquet"))
    gone = logged[logged["selection"] == "subsets:forgettable"]
    kept_rows = logged[logged["selection"] == "top:confidence:0.5"]
    assert len(gone) == len(kept_rows) == 4  # 2 contrasts x (books ID, restaurants OOD)
    assert gone["mean"].isna().all() and (gone["seeds"] == 0).all()
    assert gone["problem"].str.startswith("not identified: subsets:forgettable matches").all()
    assert kept_rows["problem"].isna().all() and (kept_rows["seeds"] == 2).all()
    parent = client.get_run(result.parent_run_id).data
    assert int(parent.tags["soi.not_identified"]) >= 2
    note = parent.tags["mlflow.note.content"].replace("\\", "")  # markdown escapes
    assert "two_stage_not_identified: selection=subsets:forgettable, seed=0" in note

    assert main(["analyze", "--parent-run-id", result.parent_run_id, "--tracking-uri", store]) == 0
    shown = capsys.readouterr().out
    # the reasons in full first (as every study prints them), then tables under 100 columns
    reasons, _, tables = shown.partition("accuracy, mean over seeds")
    assert "subsets:forgettable matches no training example in seed(s) 0, 1" in reasons
    assert "not identified" in tables and max(len(line) for line in tables.splitlines()) < 100
    for name, frame in (("intervals", logged), ("not_identified", dropped)):
        again = _fresh(store, result.parent_run_id, f"two_stage_{name}")
        pd.testing.assert_frame_equal(again, frame)

    # --resume trains nothing more and drops the same pair
    again = TwoStageSettings(stage2=specs, seeds=2, stage2_epochs=1, resume=result.parent_run_id)
    resumed = two_stage.run(base, again)
    assert (resumed.trained, resumed.reused) == (0, 6)
    pd.testing.assert_frame_equal(resumed.not_identified, result.not_identified)
    pd.testing.assert_frame_equal(resumed.intervals, result.intervals)
