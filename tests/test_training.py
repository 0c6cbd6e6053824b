"""Training with traces into a real MLflow store (SQLite): files, metrics, tags, inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mlflow import MlflowClient
from tracehelp import load_examples, load_trace, scratch_store, small_config, trace_files

from soi_mlflow.data.mixture import Mixture
from soi_mlflow.errors import SoiInputError
from soi_mlflow.model.encoder import build_tiny
from soi_mlflow.model.module import MultiTaskClassifier
from soi_mlflow.training import TrainConfig, train

EPOCHS = 2


def _config(uri: str, members=("books", "movies"), ood=("restaurants",), **kw) -> TrainConfig:
    return small_config(uri, members, ood, **{"epochs": EPOCHS, "experiment": "tests", **kw})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    with scratch_store(tmp_path_factory, "trained") as uri:
        config = _config(uri)
        result = train(config)
    return uri, result, Mixture(config.mixture)


@pytest.mark.e2e
def test_each_epoch_traces_every_training_example_once(trained) -> None:
    uri, result, mixture = trained
    files = trace_files(uri, result.run_id, "train")
    assert files == [f"traces/train/epoch={e:03d}.parquet" for e in range(EPOCHS)]
    train_ids = set(mixture.train["example_id"])
    for epoch, path in enumerate(files):
        trace, meta = load_trace(uri, result.run_id, path)
        assert len(trace) == len(train_ids) == 120
        assert trace["example_id"].is_unique and set(trace["example_id"]) == train_ids
        assert (trace["epoch"] == epoch).all()
        assert (
            meta["capture"] == "train_pass"
            and meta["split"] == "train"
            and meta["run_id"] == result.run_id
        )
        assert meta["label_names"] == {"review_sentiment": ["negative", "positive"]}
        assert trace["p_gold"].between(0, 1).all()
        # train_pass rows come from the training steps: several steps, none after the epoch
        assert trace["step"].nunique() > 1
        assert trace["step"].max() == (epoch + 1) * 8
        assert set(trace["member"]) == {"books", "movies"}
        np.testing.assert_allclose(trace["loss"], -np.log(trace["p_gold"]), rtol=1e-3, atol=1e-4)


@pytest.mark.e2e
def test_evaluation_splits_are_traced_every_epoch(trained) -> None:
    uri, result, _ = trained
    for split, members in (
        ("validation", {"books", "movies"}),
        ("test", {"books", "movies"}),
        ("ood", {"restaurants"}),
    ):
        files = trace_files(uri, result.run_id, split)
        assert len(files) == EPOCHS
        trace, meta = load_trace(uri, result.run_id, files[-1])
        assert meta["capture"] == "eval_pass"
        assert set(trace["member"]) == members
        assert len(trace) == 50 * len(members) and trace["example_id"].is_unique
        assert trace["step"].nunique() == 1


@pytest.mark.e2e
def test_metrics_tags_params_inputs_and_example_tables(trained) -> None:
    uri, result, mixture = trained
    client = MlflowClient(uri)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags["soi.axis"] == "source" and tags["soi.setting"] == "multi"
    assert tags["soi.members"] == "books,movies" and tags["soi.seed"] == "0"
    assert tags["soi.capture"] == "train_pass" and tags["soi.trace_schema"] == "3"
    assert tags["soi.stage"] == "1"
    assert run.data.params["epochs"] == str(EPOCHS) and run.data.params["model"] == "tiny"
    for key in (
        "train/loss",
        "val/books/acc",
        "test/movies/acc",
        "ood/restaurants/acc",
        "train/books/acc",
    ):
        history = client.get_metric_history(result.run_id, key)
        assert [m.step for m in history] == list(range(EPOCHS)), key
    # accuracy in MLflow is the trace's own accuracy
    trace, _ = load_trace(uri, result.run_id, trace_files(uri, result.run_id, "ood")[-1])
    assert run.data.metrics["ood/restaurants/acc"] == pytest.approx(
        (trace["pred"] == trace["gold"]).mean()
    )
    names = {(d.dataset.name, [t.value for t in d.tags][0]) for d in run.inputs.dataset_inputs}
    assert ("books/train", "train") in names and ("restaurants/ood", "ood") in names
    examples = load_examples(uri, result.run_id, "train")
    assert set(examples["example_id"]) == set(mixture.train["example_id"])
    assert {"member", "label", "label_name", "text", "planted"} <= set(examples.columns)


def _analysis(uri: str, run_id: str) -> tuple[list[str], set[str], str]:
    """What an analysis left on a run: its SOI metrics, tables and pages, description."""
    client = MlflowClient(uri)
    run = client.get_run(run_id)
    soi = [k for k in run.data.metrics if k.startswith("soi/")]
    found = {a.path for d in ("tables", "html") for a in client.list_artifacts(run_id, d)}
    return soi, found, run.data.tags.get("mlflow.note.content", "")


@pytest.mark.e2e
def test_a_training_ends_with_its_analysis(store) -> None:
    assert TrainConfig.analyze is True  # the default: one training shows its data map
    result = train(_config(store, members=("books",), ood=(), analyze=TrainConfig.analyze))
    assert MlflowClient(store).get_run(result.run_id).info.status == "FINISHED"
    assert result.analysis.analysed == ["train", "validation", "test"]
    assert not result.analysis.failed and not result.analysis.skipped
    soi, found, note = _analysis(store, result.run_id)
    assert "soi/train/always_correct_frac" in soi and "soi/train/books/coverage" in soi
    history = MlflowClient(store).get_metric_history(result.run_id, "soi/train/coverage")
    assert len(history) == 1  # analysed once: by train(), not also by the trace adapter
    assert {
        "tables/soi_train.parquet",
        "tables/soi_fractions_train.json",
        "html/datamap_train.html",
        "html/datamap_test.html",
    } <= found
    assert "The run ends with its analysis" in note
    assert "#### Analysis" in note and "html/datamap_train.html" in note


@pytest.mark.e2e
def test_with_analyze_off_the_run_is_not_analysed(trained) -> None:
    uri, result, _ = trained  # small_config turns the analysis off
    assert result.analysis is None
    soi, found, note = _analysis(uri, result.run_id)
    assert soi == [] and found == set()
    assert "#### Analysis" not in note and "`soi-mlflow analyze --run-id` adds" in note


@pytest.mark.e2e
def test_single_member_run_has_the_same_ids_as_the_mixture(trained, store) -> None:
    uri, multi, _ = trained
    single = train(_config(store, members=("books",), ood=()))
    s_trace, _ = load_trace(store, single.run_id, "traces/train/epoch=000.parquet")
    m_trace, _ = load_trace(uri, multi.run_id, "traces/train/epoch=000.parquet")
    books = m_trace[m_trace["member"] == "books"]
    assert sorted(s_trace["example_id"]) == sorted(books["example_id"])
    assert MlflowClient(store).get_run(single.run_id).data.tags["soi.setting"] == "single"


def test_eval_pass_capture_traces_train_in_eval_mode(store) -> None:
    result = train(_config(store, members=("books",), ood=(), capture="eval_pass"))
    trace, meta = load_trace(store, result.run_id, "traces/train/epoch=001.parquet")
    assert meta["capture"] == "eval_pass" and len(trace) == 60
    assert trace["step"].nunique() == 1  # one pass after the epoch, not the training steps
    run = MlflowClient(store).get_run(result.run_id)
    assert run.data.tags["soi.capture"] == "eval_pass"


def test_every_head_takes_part_in_every_step() -> None:
    """DDP needs every parameter in the graph, even a head whose task is not in the batch."""
    encoder, tok = build_tiny(["a b c", "d e f"], max_length=16, seed=0)
    model = MultiTaskClassifier(encoder, [2, 3]).eval()  # no dropout: the check repeats a pass
    enc = tok(["a b", "c d e"], padding=True, return_tensors="pt")
    batch = {
        **enc,
        "label": torch.tensor([1, 0]),
        "task_idx": torch.tensor([0, 0]),
        "example_id": torch.tensor([5, 6]),
        "member_idx": torch.tensor([0, 0]),
    }
    losses, logits = model.per_example(model.encode(batch), batch, with_trace=True)
    losses.mean().backward()
    assert all(p.grad is not None for p in model.heads.parameters())
    assert torch.count_nonzero(model.heads[1].weight.grad) == 0
    expected = model.heads[0](model.encode(batch)).detach()
    # each row's own head, padded with -inf to the widest head (3 classes)
    torch.testing.assert_close(logits[:, :2], expected)
    assert torch.isinf(logits[:, 2]).all()
    torch.testing.assert_close(
        losses.detach(),
        torch.nn.functional.cross_entropy(expected, batch["label"], reduction="none"),
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA's sync debug mode")
def test_pooling_and_the_heads_make_no_host_sync() -> None:
    """Last-token pooling, every head's loss and traced logits, and their backward run
    on the GPU without waiting for it (boolean indexing or ``.any()`` would)."""
    from soi_mlflow.model.backbone import pool

    encoder, _ = build_tiny(["a b c", "d e f"], max_length=16, seed=0)
    model = MultiTaskClassifier(encoder, [2, 3]).cuda()
    hidden = torch.randn(4, 6, encoder.config.hidden_size, device="cuda", requires_grad=True)
    mask = torch.tensor([[1] * 6, [1, 1, 0, 0, 0, 0], [0, 0, 1, 1, 1, 1], [1] * 3 + [0] * 3])
    batch = {"label": torch.tensor([1, 0, 2, 1]), "task_idx": torch.tensor([0, 0, 1, 1])}
    batch = {k: v.cuda() for k, v in {**batch, "attention_mask": mask}.items()}
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        pooled = pool(hidden, batch["attention_mask"], "last")
        losses, logits = model.per_example(pooled, batch, with_trace=True)
        losses.mean().backward()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert logits is not None and torch.isinf(logits[:2, 2]).all()


def test_bad_training_settings_fail_before_any_run(store) -> None:
    for kw, pattern in (
        ({"epochs": 0}, "epochs must be a positive"),
        ({"capture": "forward"}, "capture: expected one of train_pass, eval_pass"),
        ({"model": "./no-such-model"}, "model path './no-such-model' is not a folder"),
    ):
        with pytest.raises(SoiInputError, match=pattern):
            train(_config(store, **kw))
    with pytest.raises(SoiInputError, match="unknown member 'kitchen'"):
        train(_config(store, members=("kitchen",)))
    assert MlflowClient(store).search_experiments()[0].name == "Default"
    assert not MlflowClient(store).search_runs(["0"])


def test_same_seed_gives_the_same_trace(store) -> None:
    a = train(_config(store, members=("books",), ood=(), epochs=1))
    b = train(_config(store, members=("books",), ood=(), epochs=1))
    ta, _ = load_trace(store, a.run_id, "traces/train/epoch=000.parquet")
    tb, _ = load_trace(store, b.run_id, "traces/train/epoch=000.parquet")
    assert a.run_id != b.run_id
    assert ta.equals(tb)


def test_a_model_from_a_local_folder(store, tmp_path) -> None:
    """A transformers model saved on disk loads by path (what a hub model is, offline)."""
    mixture = Mixture(_config(store).mixture)
    encoder, tokenizer = build_tiny(list(mixture.train["text"]), max_length=64, seed=1)
    folder = tmp_path / "my-encoder"
    encoder.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    result = train(_config(store, members=("books",), ood=(), epochs=1, model=str(folder), lr=1e-3))
    trace, _ = load_trace(store, result.run_id, "traces/train/epoch=000.parquet")
    assert len(trace) == 60
    assert MlflowClient(store).get_run(result.run_id).data.tags["soi.model"] == str(folder)


def test_a_checkpoint_holds_no_call_state_of_its_tokenizer(tmp_path) -> None:
    """Tokenising leaves truncation set on a fast tokenizer, tokens read from the cache
    leave it unset: the same training's checkpoint, and so the training key of every run
    started from it, must not tell the two apart."""
    from soi_mlflow.model.checkpoint import save_checkpoint
    from soi_mlflow.training import build_model
    from soi_mlflow.training.key import folder_digest

    config = _config("sqlite:///unused.db", members=("books",), ood=())
    mixture = Mixture(config.mixture)
    module, tokenizer = build_model(config, mixture)
    untouched = save_checkpoint(module, tokenizer, mixture.tasks, tmp_path / "untouched")
    tokenizer(["a sentence to cut"], truncation=True, max_length=4)
    called = save_checkpoint(module, tokenizer, mixture.tasks, tmp_path / "called")
    assert folder_digest(untouched) == folder_digest(called)
    assert tokenizer.backend_tokenizer.truncation["max_length"] == 4  # the caller's, kept
