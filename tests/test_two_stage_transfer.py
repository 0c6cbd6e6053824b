"""Two-stage fine-tuning and transfer matrices, against a real MLflow store."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from tracehelp import load_trace, scratch_store, small_config

from soi_mlflow.analysis import soi_table
from soi_mlflow.analysis.runs import cache_for
from soi_mlflow.data.mixture import Mixture
from soi_mlflow.errors import SoiInputError
from soi_mlflow.studies import transfer, two_stage
from soi_mlflow.studies.transfer import TransferSettings
from soi_mlflow.studies.two_stage import Selection, TwoStageSettings
from soi_mlflow.tracking.run import ensure_experiment, soi_tags
from soi_mlflow.training import TrainConfig, build_model, run_params, train
from soi_mlflow.training.key import TRAINING_KEY_TAG, training_key


def _base(uri: str, members=("books",), axis="source", **kw) -> TrainConfig:
    ood = ("restaurants",) if axis == "source" else ()
    return small_config(
        uri,
        members,
        ood,
        axis,
        max_examples=80,
        eval_max_examples=40,
        **{"experiment": "two-stage-tests", **kw},
    )


@pytest.fixture(scope="module")
def stage1(tmp_path_factory):
    with scratch_store(tmp_path_factory, "two_stage") as uri:
        result = train(replace(_base(uri), log_checkpoint=True))
    return uri, result


@pytest.mark.e2e
def test_the_checkpoint_holds_the_final_stage1_weights(stage1) -> None:
    uri, result = stage1
    cache = cache_for(uri)
    folder = cache.checkpoint(result.run_id)
    config = replace(_base(uri), init_from=str(folder))
    module, _ = build_model(config, Mixture(config.mixture))
    trained = result.module.state_dict()
    loaded = module.state_dict()
    assert trained.keys() == loaded.keys()
    for key, tensor in trained.items():
        assert torch.equal(tensor, loaded[key]), key


@pytest.mark.e2e
def test_stage2_trains_on_exactly_the_selected_examples(stage1, monkeypatch, tmp_path) -> None:
    uri, s1 = stage1
    monkeypatch.chdir(tmp_path)
    selection = Selection(metric="variability", fraction=0.25)
    out = two_stage.run(_base(uri), TwoStageSettings.of(selection, 1, stage1_run_id=s1.run_id))
    expected = set(selection.select(soi_table(s1.run_id, tracking_uri=uri)))
    assert out.selected == len(expected) == 20
    trace, _ = load_trace(uri, out.stage2_run_id, "traces/train/epoch=000.parquet")
    assert set(trace["example_id"]) == expected and len(trace) == 20
    control, _ = load_trace(uri, out.control_run_id, "traces/train/epoch=000.parquet")
    stage1_ids = set(soi_table(s1.run_id, tracking_uri=uri)["example_id"])
    assert len(control) == 20 and set(control["example_id"]) <= stage1_ids
    assert set(control["example_id"]) != expected
    client = MlflowClient(uri)
    tags = client.get_run(out.stage2_run_id).data.tags
    assert tags["soi.stage"] == "2" and tags["soi.stage1_run_id"] == s1.run_id
    assert (
        tags["mlflow.parentRunId"] == out.parent_run_id
        and tags["soi.selection"] == "top:variability:0.25"
    )
    assert client.get_run(out.control_run_id).data.tags["soi.control"] == "true"
    assert client.get_run(out.stage2_run_id).data.params["init_from"].endswith("checkpoint")
    artifacts = {a.path for a in client.list_artifacts(out.parent_run_id, "figures")}
    assert artifacts == {
        "figures/two_stage_accuracy.png",
        "figures/two_stage_intervals.png",
        "figures/two_stage_migration_1_top_variability_0.25.png",
    }
    assert list(out.table.columns) == ["stage 1", "stage 2", "control"]
    assert list(out.table.index) == ["books (test)", "restaurants (ood)"]
    headline = client.get_run(out.parent_run_id).data.metrics
    assert headline["summary/stage_2/test_acc"] == pytest.approx(
        out.table.loc["books (test)", "stage 2"]
    )
    assert headline["summary/test_acc_stage2_minus_control"] == pytest.approx(
        out.table.loc["books (test)", "stage 2"] - out.table.loc["books (test)", "control"]
    )


@pytest.mark.e2e
def test_stage2_selects_the_subset_of_a_registered_taxonomy(stage1, monkeypatch, tmp_path) -> None:
    from soi_mlflow.analysis import Taxonomy, register_taxonomy

    uri, s1 = stage1
    monkeypatch.chdir(tmp_path)
    # a cut at stage 1's median confidence: both subsets are sure to hold examples
    median = float(soi_table(s1.run_id, tracking_uri=uri)["confidence"].median())
    name = "two_stage_test_confidence"
    register_taxonomy(
        Taxonomy(name, (("unsure", f"confidence < {median!r}"), ("sure", "confidence >= 0")))
    )
    table = soi_table(s1.run_id, taxonomy=name, tracking_uri=uri)
    expected = set(table.loc[table["soi"] == "unsure", "example_id"])
    assert 0 < len(expected) < len(table)
    selection = Selection(subsets=("unsure",), taxonomy=name)
    out = two_stage.run(_base(uri), TwoStageSettings.of(selection, 1, stage1_run_id=s1.run_id))
    trace, _ = load_trace(uri, out.stage2_run_id, "traces/train/epoch=000.parquet")
    assert set(trace["example_id"]) == expected and out.selected == len(expected)
    client = MlflowClient(uri)
    assert client.get_run(out.parent_run_id).data.params["taxonomy"] == name
    assert client.get_run(out.stage2_run_id).data.tags["soi.selection"] == f"subsets:unsure@{name}"


@pytest.mark.e2e
def test_bad_stage2_selections(stage1) -> None:
    uri, s1 = stage1
    for selection, pattern in (
        (Selection(subsets=("sometimes",)), "unknown subset 'sometimes'"),
        (Selection(region="tricky"), "unknown region 'tricky'"),
        (Selection(metric="loss", fraction=0.2), "unknown metric 'loss'"),
        (Selection(metric="confidence", fraction=1.5), r"fraction must be in \(0, 1\]"),
        # none given takes the default selection (tests/test_defaults.py); two are refused
        (Selection(subsets=("forgotten",), region="ambiguous"), "exactly one stage-2 selection"),
    ):
        with pytest.raises(SoiInputError, match=pattern):
            two_stage.run(_base(uri), TwoStageSettings.of(selection, 1, stage1_run_id=s1.run_id))
    # with 2 epochs the split epoch is 1, so no example can be early_learned (1 < t <= 1)
    runs_before = len(MlflowClient(uri).search_runs([s1.experiment_id]))
    with pytest.raises(
        SoiInputError, match="matches no training example .* no stage-2 training was started"
    ):
        two_stage.run(
            _base(uri),
            TwoStageSettings.of(Selection(subsets=("early_learned",)), 1, stage1_run_id=s1.run_id),
        )
    runs = MlflowClient(uri).search_runs([s1.experiment_id])
    assert len(runs) == runs_before + 1  # the study's parent, marked failed; nothing trained
    assert sorted(r.info.status for r in runs).count("FAILED") == 1


def _fake_run(
    client, experiment_id: str, base: TrainConfig, members: tuple[str, ...], scores: dict
) -> str:
    """A finished run with scores and the training key ``train`` would give a run of
    ``base`` on ``members``, without training it."""
    config = replace(base, mixture=replace(base.mixture, members=members))
    tags = soi_tags(axis=base.mixture.axis, members=list(members), seed=base.seed, stage=1)
    run = client.create_run(experiment_id, tags=tags | {TRAINING_KEY_TAG: training_key(config)})
    client.log_batch(
        run.info.run_id,
        params=[Param(k, str(v)) for k, v in run_params(config).items() if v is not None],
        metrics=[Metric(f"test/{m}/acc", v, 0, 0) for m, v in scores.items()],
        tags=[RunTag("fake", "yes")],
    )
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def test_transfer_matrix_from_constructed_runs_reuses_them(store) -> None:
    base = _base(
        store,
        members=("sentiment", "paraphrase", "entailment"),
        axis="task",
        experiment="transfer-tests",
    )
    client = MlflowClient(store)
    exp = ensure_experiment(client, "transfer-tests")
    alone = {"sentiment": 0.90, "paraphrase": 0.70, "entailment": 0.60}
    for m, v in alone.items():
        _fake_run(client, exp, base, (m,), {m: v})
    pairs = {
        ("sentiment", "paraphrase"): {"sentiment": 0.91, "paraphrase": 0.69},
        ("sentiment", "entailment"): {"sentiment": 0.93, "entailment": 0.75},
        ("paraphrase", "entailment"): {"paraphrase": 0.78, "entailment": 0.70},
    }
    for members, scores in pairs.items():
        _fake_run(client, exp, base, members, scores)
    result = transfer.run(base, TransferSettings(reuse=True))
    assert result.trained == 0 and result.reused == 6
    t = result.mean
    assert t.shape == (3, 3) and np.isnan(np.diag(t.to_numpy())).all()
    assert t.loc["sentiment", "paraphrase"] == pytest.approx(0.69 - 0.70)
    assert t.loc["paraphrase", "sentiment"] == pytest.approx(0.91 - 0.90)
    assert t.loc["entailment", "sentiment"] == pytest.approx(0.93 - 0.90)
    assert t.loc["sentiment", "entailment"] == pytest.approx(0.75 - 0.60)
    assert t.loc["paraphrase", "entailment"] == pytest.approx(0.70 - 0.60)
    assert t.loc["entailment", "paraphrase"] == pytest.approx(0.78 - 0.70)
    assert (result.std.fillna(0) == 0).all().all()  # one seed
    explained = result.traits["explained"]["explained_variance"]
    assert explained.sum() == pytest.approx(1.0) and list(
        result.traits["source_scores"].index
    ) == list(t.index)
    files = {a.path for a in client.list_artifacts(result.parent_run_id, "figures")}
    assert files == {
        "figures/transfer_matrix.png",
        "figures/transfer_biplot.png",
        "figures/transfer_asymmetry.png",  # no profiles: no factor figures, a tag says so
    }
    tables = {a.path for a in client.list_artifacts(result.parent_run_id, "tables")}
    assert "tables/transfer_intervals.parquet" in tables
    metrics = client.get_run(result.parent_run_id).data.metrics
    assert metrics["compute/example_passes"] == 0 and metrics["compute/runs"] == 0  # all reused
    assert metrics["compute/wall_seconds"] > 0
    assert metrics["transfer/sentiment/entailment"] == pytest.approx(0.75 - 0.60)
    assert "transfer/sentiment/sentiment" not in metrics  # the diagonal is undefined


def test_bad_transfer_studies(store) -> None:
    with pytest.raises(SoiInputError, match="at least two members"):
        transfer.run(_base(store, members=("books",)), TransferSettings())
    with pytest.raises(SoiInputError, match="is on axis 'lang', not 'source'"):
        transfer.run(_base(store, members=("books", "lang_a")), TransferSettings())
    with pytest.raises(SoiInputError, match="mode: expected one of joint, sequential"):
        transfer.run(_base(store, members=("books", "movies")), TransferSettings("parallel"))
    assert not MlflowClient(store).search_runs(
        [e.experiment_id for e in MlflowClient(store).search_experiments()]
    )


def test_analyze_rebuilds_the_transfer_matrix_from_existing_runs(store) -> None:
    from soi_mlflow.studies.transfer import reanalyze_transfer

    base = _base(store, members=("books", "movies"), experiment="transfer-tests")
    client = MlflowClient(store)
    exp = ensure_experiment(client, "transfer-tests")
    runs = {m: _fake_run(client, exp, base, (m,), {m: 0.8}) for m in ("books", "movies")}
    pair = _fake_run(client, exp, base, ("books", "movies"), {"books": 0.85, "movies": 0.7})
    result = transfer.run(base, TransferSettings(reuse=True))
    assert result.mean.loc["movies", "books"] == pytest.approx(0.05)
    # a score changes (say, a corrected metric): re-analysis picks it up, trains nothing
    client.log_metric(pair, "test/books/acc", 0.9)
    mean, _, _ = reanalyze_transfer(result.parent_run_id, store)
    assert mean.loc["movies", "books"] == pytest.approx(0.1)
    assert mean.loc["books", "movies"] == pytest.approx(-0.1)
    assert len(client.search_runs([exp])) == 4
    del runs


@pytest.mark.e2e
def test_reuse_needs_the_full_training_settings(store) -> None:
    """A learning-curve child (books capped at 10 examples) must not stand in for the
    full-data books baseline; a run with exactly the requested settings is reused."""
    base = small_config(
        store,
        ("books", "movies"),
        max_examples=32,
        eval_max_examples=16,
        experiment="transfer-tests",
        epochs=1,
    )
    alone = {
        m: replace(base, mixture=replace(base.mixture, members=(m,))) for m in base.mixture.members
    }
    books = alone["books"]
    child = train(
        replace(books, mixture=replace(books.mixture, member_max_examples=(("books", 10),)))
    ).run_id
    exact = train(alone["movies"]).run_id
    client = MlflowClient(store)
    assert client.get_run(child).data.params["max_examples"] == "32"  # same as the baseline's
    result = transfer.run(base, TransferSettings(reuse=True))
    assert result.reused == 1 and result.trained == 2
    alone_runs = result.scores[result.scores["source"].isna()].set_index("target")["run_id"]
    assert alone_runs["movies"] == exact and alone_runs["books"] != child
    # the books baseline trained here has all 32 examples; the child's trace has 10
    trace, _ = load_trace(store, alone_runs["books"], "traces/train/epoch=000.parquet")
    assert len(trace) == 32
    # and a second study reuses every run of the first, the pair included
    again = transfer.run(base, TransferSettings(reuse=True))
    assert again.reused == 3 and again.trained == 0


def test_the_training_key_covers_every_training_setting() -> None:
    base = small_config("sqlite:///unused.db", ("books", "movies"), ("restaurants",))
    key = training_key(base)
    assert key == training_key(replace(base))
    spec = base.mixture
    changed = {
        "a member cap": replace(base, mixture=replace(spec, member_max_examples=(("books", 50),))),
        "a training subset": replace(base, mixture=replace(spec, train_ids=frozenset({1, 2}))),
        "another subset": replace(base, mixture=replace(spec, train_ids=frozenset({1, 3}))),
        "max_examples": replace(base, mixture=replace(spec, max_examples=59)),
        "member order": replace(base, mixture=replace(spec, members=("movies", "books"))),
        "members": replace(base, mixture=replace(spec, members=("books",))),
        "sampling": replace(base, mixture=replace(spec, sampling="uniform")),
        "data seed": replace(base, mixture=replace(spec, data_seed=1)),
        "evaluation size": replace(base, mixture=replace(spec, eval_max_examples=49)),
        "epochs": replace(base, epochs=3),
        "seed": replace(base, seed=1),
        "model": replace(base, model="some/model"),
        "lr": replace(base, lr=5e-4),
        "weight decay": replace(base, weight_decay=0.0),
        "warm-up": replace(base, warmup_ratio=0.0),
        "batch size": replace(base, batch_size=8),
        "length": replace(base, max_length=32),
        "capture": replace(base, capture="eval_pass"),
        "affinity": replace(base, affinity_every=20),
        "a starting checkpoint": replace(base, init_from="/no/such/checkpoint"),
    }
    keys = {name: training_key(config) for name, config in changed.items()}
    assert all(k != key for k in keys.values()), [n for n, k in keys.items() if k == key]
    assert len(set(keys.values())) == len(keys)
    # the same learning rate given explicitly is the same training
    assert training_key(replace(base, lr=1e-3)) == key
    # what only records or is only evaluated does not change the key
    for same in (
        replace(base, experiment="other", run_name="x", tags={"team": "nlp"}, progress=False),
        replace(base, mixture=replace(spec, ood=()), log_checkpoint=True, checkpoint_every=0),
        replace(base, mixture=replace(spec, temperature=3.0)),  # not temperature sampling
    ):
        assert training_key(same) == key
