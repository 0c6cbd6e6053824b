"""LoRA adapters through ``peft`` (``--peft lora``): what trains, what the logged MLflow
Model holds and predicts, and a second stage that continues from the adapter. Tiny random
GPT-2 from ``tests/decoderhelp.py``, real MLflow (SQLite)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import lightning.pytorch as pl
import mlflow
import numpy as np
import pytest
import torch
from decoderhelp import bpe_tokenizer, save_decoder, suite_texts
from mlflow import MlflowClient
from tracehelp import load_examples, load_trace, scratch_store, small_config

from soi_mlflow.data.mixture import Mixture
from soi_mlflow.errors import SoiInputError
from soi_mlflow.model.adapters import target_modules
from soi_mlflow.training import build_model, train

pytest.importorskip("peft")


def test_auto_targets_follow_the_architecture() -> None:
    from transformers import BertConfig, GPT2Config, LlamaConfig, Qwen2Config

    assert target_modules(GPT2Config(), "auto") == ["c_attn"]
    assert target_modules(LlamaConfig(), "auto") == ["q_proj", "v_proj"]
    assert target_modules(Qwen2Config(), "auto") == ["q_proj", "v_proj"]
    assert target_modules(BertConfig(), "auto") == ["query", "value"]
    assert target_modules(GPT2Config(), "c_attn, c_proj") == ["c_attn", "c_proj"]


def test_bad_adapter_settings_are_refused(store) -> None:
    with pytest.raises(SoiInputError, match="peft"):
        train(small_config(store, peft="prefix"))
    with pytest.raises(SoiInputError, match="lora-r"):
        train(small_config(store, peft="lora", lora_r=0))


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    return save_decoder(
        "gpt2", tmp_path_factory.mktemp("gpt2") / "gpt2", bpe_tokenizer(suite_texts())
    )


def _config(uri: str, model: str, **kw):
    return small_config(
        uri,
        ("books", "movies"),
        max_examples=32,
        eval_max_examples=16,
        **{"model": model, "peft": "lora", "lr": 3e-3, "epochs": 2, "log_model": True, **kw},
    )


@pytest.fixture(scope="module")
def stage1(tmp_path_factory, gpt2):
    with scratch_store(tmp_path_factory, "adapters") as uri:
        config = _config(uri, str(gpt2))
        pl.seed_everything(config.seed, verbose=False)  # as train() does before building
        start, _ = build_model(config, Mixture(config.mixture))
        initial = {n: p.detach().clone() for n, p in start.named_parameters()}
        yield uri, config, initial, train(config)


def _load(model_uri: str, tracking_uri: str):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", tracking_uri)
        return mlflow.pyfunc.load_model(model_uri)


@pytest.mark.e2e
def test_only_adapter_and_head_parameters_change(stage1) -> None:
    uri, _, initial, result = stage1
    trained = dict(result.module.named_parameters())
    assert set(trained) == set(initial)
    trainable = {n for n, p in trained.items() if p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith("heads.") for n in trainable)
    assert any(n.startswith("heads.") for n in trainable)
    for name, before in initial.items():
        changed = not torch.equal(before, trained[name].detach())
        assert changed == (name in trainable), name
    params = MlflowClient(uri).get_run(result.run_id).data.params
    total = sum(p.numel() for p in trained.values())
    count = sum(trained[n].numel() for n in trainable)
    assert params["trainable_params"] == str(count) and params["total_params"] == str(total)
    assert 0 < float(params["trainable_share"]) < 0.2
    assert params["peft"] == "lora" and params["lora_r"] == "8" and params["lora_targets"] == "auto"


@pytest.mark.e2e
def test_the_logged_model_holds_the_adapter_names_its_base_and_predicts_as_traced(
    stage1, gpt2, monkeypatch
) -> None:
    uri, _, _, result = stage1
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    from soi_mlflow.model.mlflow_model import locate_model, model_checkpoint

    model_uri = f"runs:/{result.run_id}/model"
    with model_checkpoint(model_uri, uri) as folder:
        files = {p.relative_to(folder).as_posix() for p in folder.rglob("*")}
        meta = json.loads((folder / "tasks.json").read_text())
    assert "adapter/adapter_model.safetensors" in files
    assert not any(f.startswith("encoder") for f in files)  # small: the backbone by name
    assert meta["base_model"] == str(gpt2.resolve()) and meta["pooling"] == "last"
    where = locate_model(model_uri, uri).artifact_uri
    pins = mlflow.artifacts.download_artifacts(f"{where}/requirements.txt", tracking_uri=uri)
    assert "peft==" in Path(pins).read_text()

    examples = load_examples(uri, result.run_id, "validation")
    trace, _ = load_trace(uri, result.run_id, "traces/validation/epoch=001.parquet")
    frame = examples[["text"]].assign(task="review_sentiment")
    out = _load(f"runs:/{result.run_id}/model", uri).predict(frame)
    traced = trace.set_index("example_id").loc[examples["example_id"]]
    np.testing.assert_array_equal(out["pred"].to_numpy(), traced["pred"].to_numpy())
    p_gold = [probs[g] for probs, g in zip(out["probs"], examples["label"], strict=True)]
    np.testing.assert_allclose(p_gold, traced["p_gold"].to_numpy(), rtol=2**-12)


@pytest.mark.e2e
def test_a_second_stage_continues_from_the_adapter(stage1) -> None:
    uri, config, _, result = stage1
    second = replace(config, init_from=f"runs:/{result.run_id}/model", stage=2, epochs=1)
    start, _ = build_model(second, Mixture(second.mixture))
    stage1_weights = dict(result.module.named_parameters())
    for name, param in start.named_parameters():  # the adapter and heads it ended with
        assert torch.equal(param.detach(), stage1_weights[name].detach()), name
        assert param.requires_grad == stage1_weights[name].requires_grad, name
    child = train(second)
    params = MlflowClient(uri).get_run(child.run_id).data.params
    first = MlflowClient(uri).get_run(result.run_id).data.params
    assert params["trainable_params"] == first["trainable_params"]
    assert params["base_model"] == first["base_model"]


def test_full_fine_tuning_from_an_adapter_trains_the_merged_backbone(gpt2, tmp_path) -> None:
    """Without ``--peft``, a checkpoint's adapter is merged into the backbone, which then
    trains in full, in training mode (peft loads an adapter frozen and in eval mode)."""
    from soi_mlflow.model.checkpoint import save_checkpoint

    config = _config(f"sqlite:///{tmp_path / 'unused.db'}", str(gpt2))
    mixture = Mixture(config.mixture)
    adapted, tokenizer = build_model(config, mixture)
    folder = save_checkpoint(adapted, tokenizer, mixture.tasks, tmp_path / "checkpoint")
    full, _ = build_model(replace(config, peft=None, init_from=str(folder)), mixture)
    frozen = [n for n, p in full.encoder.named_parameters() if not p.requires_grad]
    assert not frozen, frozen
    assert full.encoder.training


@pytest.mark.e2e
def test_lora_on_the_tiny_encoder_saves_its_backbone_and_reloads(store) -> None:
    """``tiny`` is built from the training texts, so no name reloads it: the model
    holds the frozen backbone beside the adapter."""
    result = train(_config(store, "tiny", epochs=1, lr=1e-3))
    model = _load(f"runs:/{result.run_id}/model", store)
    examples = load_examples(store, result.run_id, "validation")
    trace, _ = load_trace(store, result.run_id, "traces/validation/epoch=000.parquet")
    out = model.predict(examples[["text"]].assign(task="review_sentiment"))
    traced = trace.set_index("example_id").loc[examples["example_id"]]
    np.testing.assert_array_equal(out["pred"].to_numpy(), traced["pred"].to_numpy())
    params = MlflowClient(store).get_run(result.run_id).data.params
    assert "base_model" not in params


@pytest.mark.e2e
def test_a_resumed_lora_run_is_bit_identical(store, gpt2, tmp_path, monkeypatch) -> None:
    """``--peft lora``, 2 epochs uninterrupted; then the same run stopped by an error as
    epoch 2 starts (its epoch-1 checkpoint kept) and resumed: every trace value and the
    final adapter and head weights are equal."""
    from faulthelp import assert_same_traces, metric_history

    from soi_mlflow.callbacks.resume import EpochSeed

    config = _config(store, str(gpt2), log_model=False, lora_dropout=0.1)
    whole = train(config)

    original = EpochSeed.on_train_epoch_start

    def stop_at_epoch_1(self, trainer, pl_module) -> None:
        if trainer.current_epoch == 1:
            raise RuntimeError("stopped by the test")
        original(self, trainer, pl_module)

    monkeypatch.setattr(EpochSeed, "on_train_epoch_start", stop_at_epoch_1)
    with pytest.raises(RuntimeError, match="stopped by the test"):
        train(config)
    monkeypatch.setattr(EpochSeed, "on_train_epoch_start", original)
    client = MlflowClient(store)
    stopped = client.search_runs(
        [client.get_run(whole.run_id).info.experiment_id],
        "attributes.status = 'FAILED'",
    )[0].info.run_id
    resumed = train(replace(config, resume=stopped))
    assert resumed.run_id == stopped
    run = client.get_run(stopped)
    assert run.info.status == "FINISHED" and run.data.tags["soi.resumed"] == "1"

    splits = sorted(Path(a.path).name for a in client.list_artifacts(whole.run_id, "traces"))
    assert "validation" in splits
    assert assert_same_traces(store, whole.run_id, stopped, splits, 2, tmp_path, exact_until=2)
    for key in ("train/loss", "val/books/acc"):
        assert metric_history(store, stopped, key) == metric_history(store, whole.run_id, key)
    ours = dict(resumed.module.named_parameters())
    theirs = dict(whole.module.named_parameters())
    trainable = [n for n, p in theirs.items() if p.requires_grad]
    assert any("lora_" in n for n in trainable)
    for name in trainable:
        assert torch.equal(ours[name].detach(), theirs[name].detach()), name


@pytest.mark.e2e
def test_sequential_transfer_continues_the_source_adapter(store, gpt2, tmp_path) -> None:
    """``soi-mlflow transfer --mode sequential --peft lora`` on a decoder: each target run
    starts from its source's adapter and trains it on (base model named, adapter sized)."""
    from tracehelp import run_cli_here

    from soi_mlflow.analysis.runs import find_runs

    small = ["--epochs", "1", "--max-examples", "24", "--eval-max-examples", "16"]
    lora = ["--model", str(gpt2), "--peft", "lora", "--lr", "0.003"]
    out = run_cli_here(
        ["transfer", "--axis", "source", "--members", "books,movies", "--mode", "sequential"]
        + [*small, *lora, "--batch-size", "16", "--no-progress"],
        store,
        tmp_path,
    )
    assert "trained 4 runs, reused 0" in out
    client = MlflowClient(store)
    parent = find_runs(tracking_uri=store, study="transfer")["run_id"][0]
    children = find_runs(tracking_uri=store, parent_run_id=parent)
    assert set(children["sequence"].dropna()) == {"books>movies", "movies>books"}
    alone = {r.members: r.run_id for r in children.itertuples() if not isinstance(r.sequence, str)}
    for run_id, sequence in zip(children["run_id"], children["sequence"], strict=True):
        params = client.get_run(run_id).data.params
        assert params["peft"] == "lora" and params["base_model"] == str(gpt2.resolve())
        assert 0 < float(params["trainable_share"]) < 0.2
        if isinstance(sequence, str):  # from the source run's checkpoint: its adapter
            assert alone[sequence.split(">")[0]] in params["init_from"], params["init_from"]
    assert "tables/transfer_mean.parquet" in {
        a.path for a in client.list_artifacts(parent, "tables")
    }
