"""The Lightning adapter on a user's own module, batch keys and MLFlowLogger (no soi-mlflow
model or data), and the built-in trainer's traces against the same adapter used by hand."""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import pytest
import torch
from hostreads import HostReads
from lightning.pytorch.loggers import MLFlowLogger
from mlflow import MlflowClient
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tracehelp import load_trace, trace_files

from soi_mlflow.errors import SoiInputError
from soi_mlflow.lightning import EpochSeed, TraceCallback

N_TRAIN, N_VAL = 70, 30


class Points(Dataset):
    """Random 8-d points, a linear rule for 2 classes, ids far from 0..N."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 8, generator=g)
        self.y = (self.x[:, 0] + 0.5 * self.x[:, 1] > 0).long()
        self.ids = torch.arange(n) + 10_000 * (seed + 1)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"uid": self.ids[i], "features": self.x[i], "target": self.y[i]}


class UserModule(pl.LightningModule):
    """What a researcher already has: their own keys, their own metrics."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))

    def training_step(self, batch, batch_idx):
        scores = self.net(batch["features"])
        loss = nn.functional.cross_entropy(scores, batch["target"])
        self.log("my_train_loss", loss, on_epoch=True, on_step=False)
        return {"loss": loss, "scores": scores}

    def validation_step(self, batch, batch_idx):
        scores = self.net(batch["features"])
        self.log("my_val_loss", nn.functional.cross_entropy(scores, batch["target"]))
        return {"scores": scores}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(callback: TraceCallback | None, logger=False, epochs: int = 3) -> pl.Trainer:
    pl.seed_everything(0, verbose=False)
    trainer = pl.Trainer(
        max_epochs=epochs,
        logger=logger,
        callbacks=[callback] if callback is not None else [],
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        accelerator="cpu",
    )
    train = DataLoader(Points(N_TRAIN, 0), batch_size=16, shuffle=True)
    val = DataLoader(Points(N_VAL, 1), batch_size=16)
    trainer.fit(UserModule(), train, val)
    return trainer


def test_a_user_module_with_its_own_logger_gives_one_complete_run(module_store) -> None:
    logger = MLFlowLogger(experiment_name="user", tracking_uri=module_store)
    callback = TraceCallback(
        ids="uid", labels="target", logits="scores", label_names=["left", "right"]
    )
    _fit(callback, logger)
    client = MlflowClient(module_store)
    experiment = client.get_experiment_by_name("user")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1 and runs[0].info.run_id == logger.run_id  # one run, not two
    run = runs[0]
    assert "my_train_loss" in run.data.metrics and "my_val_loss" in run.data.metrics
    assert run.data.metrics["val/default/acc"] >= 0.0 and run.data.tags["soi.recorder"] == (
        "lightning"
    )
    assert trace_files(module_store, run.info.run_id, "train") == [
        f"traces/train/epoch={e:03d}.parquet" for e in range(3)
    ]
    for epoch in range(3):
        trace, meta = load_trace(
            module_store, run.info.run_id, f"traces/train/epoch={epoch:03d}.parquet"
        )
        # every training example exactly once per epoch, with the user's own ids
        assert trace["example_id"].tolist() == list(range(10_000, 10_000 + N_TRAIN))
        assert meta["capture"] == "train_pass" and trace["epoch"].eq(epoch).all()
        val, vmeta = load_trace(
            module_store, run.info.run_id, f"traces/validation/epoch={epoch:03d}.parquet"
        )
        assert val["example_id"].tolist() == list(range(20_000, 20_000 + N_VAL))
        assert vmeta["capture"] == "eval_pass"
    y = Points(N_VAL, 1).y.numpy()
    assert (val["gold"].to_numpy() == y).all()


def test_without_a_logger_the_callback_starts_and_ends_a_run(module_store) -> None:
    callback = TraceCallback(ids="uid", labels="target", logits="scores", tracking_uri=module_store)
    _fit(callback, epochs=1)
    run = MlflowClient(module_store).get_run(callback.run_id_resolved)
    assert run.info.status == "FINISHED"
    assert len(trace_files(module_store, run.info.run_id, "validation")) == 1


def _analysis_artifacts(client: MlflowClient, run_id: str) -> set[str]:
    return {a.path for d in ("tables", "html") for a in client.list_artifacts(run_id, d)}


def test_fit_ends_with_the_analysis_unless_turned_off(module_store) -> None:
    client = MlflowClient(module_store)
    for analyze in (True, False):
        callback = TraceCallback(
            ids="uid", labels="target", logits="scores", tracking_uri=module_store, analyze=analyze
        )
        _fit(callback, epochs=2)
        run = client.get_run(callback.run_id_resolved)
        assert run.info.status == "FINISHED"
        soi = [k for k in run.data.metrics if k.startswith("soi/")]
        found = _analysis_artifacts(client, run.info.run_id)
        note = run.data.tags.get("mlflow.note.content", "")
        if analyze:
            assert callback.analysis.analysed == ["train", "validation"]
            assert "soi/train/always_correct_frac" in soi and "soi/validation/coverage" in soi
            assert {
                "tables/soi_train.parquet",
                "tables/soi_fractions_validation.json",
                "html/datamap_train.html",
            } <= found
            assert "#### Analysis" in note and "html/datamap_train.html" in note
        else:
            assert callback.analysis is None and soi == [] and found == set() and note == ""


def test_a_batch_without_ids_fails_at_the_first_batch(module_store) -> None:
    callback = TraceCallback(labels="target", logits="scores", tracking_uri=module_store)
    with pytest.raises(SoiInputError, match="the batch has no 'example_id'"):
        _fit(callback, epochs=1)
    run = MlflowClient(module_store).get_run(callback.run_id_resolved)
    assert run.info.status == "FAILED"  # ended, with nothing written
    assert MlflowClient(module_store).list_artifacts(run.info.run_id) == []


def test_a_step_that_returns_no_logits_is_named(module_store) -> None:
    callback = TraceCallback(ids="uid", labels="target", tracking_uri=module_store)
    with pytest.raises(SoiInputError, match="outputs have no 'logits'"):
        _fit(callback, epochs=1)


@pytest.mark.e2e
def test_builtin_trainer_and_the_adapter_by_hand_give_identical_traces(store) -> None:
    """The built-in trainer is one user of the adapter: the same module, data and seed
    traced through a hand-made Trainer + MLFlowLogger + TraceCallback + EpochSeed (the
    set-up docs/integrations.md gives) give the same files' contents."""
    from soi_mlflow.data.datamodule import MixtureDataModule
    from soi_mlflow.data.mixture import Mixture, MixtureSpec
    from soi_mlflow.training import TrainConfig, build_model, train

    # 40 examples of each evaluation split, as of the train split: both sides evaluate the
    # same examples either way, and on the full splits (400 a member) evaluating took ~90%
    # of the two trainings' time
    spec = MixtureSpec(
        suite="builtin",
        axis="source",
        members=("books", "movies"),
        max_examples=40,
        eval_max_examples=40,
    )
    config = TrainConfig(mixture=spec, epochs=2, seed=3, tracking_uri=store, progress=False)
    builtin = train(config)

    pl.seed_everything(3, workers=True, verbose=False)
    mixture = Mixture(spec)
    module, tokenizer = build_model(config, mixture)
    data = MixtureDataModule(mixture, tokenizer, config.max_length, config.batch_size, 3)
    logger = MLFlowLogger(experiment_name="by-hand", tracking_uri=store)

    def select(outputs, batch):
        return {
            "example_ids": batch["example_id"],
            "logits": outputs["logits"],
            "labels": batch["label"],
            "member": batch["member_idx"],
            "task": batch["task_idx"],
        }

    callback = TraceCallback(
        select=select,
        members=list(mixture.all_members),
        label_names={t: list(n) for t, n in mixture.tasks.items()},
        eval_splits=[split for split, _ in data.eval_keys],
    )
    pl.Trainer(
        max_epochs=2,
        logger=logger,
        callbacks=[callback, EpochSeed(3)],
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        deterministic="warn",
    ).fit(module, datamodule=data)
    for split in ("train", "validation", "test"):
        files = trace_files(store, builtin.run_id, split)
        assert files == trace_files(store, logger.run_id, split) and files
        for path in files:
            a, _ = load_trace(store, builtin.run_id, path)
            b, _ = load_trace(store, logger.run_id, path)
            cols = ["example_id", "epoch", "step", "gold", "pred", "p_gold", "loss", "margin"]
            np.testing.assert_array_equal(a[cols].to_numpy(), b[cols].to_numpy())
            assert (a["member"].astype(str) == b["member"].astype(str)).all()


class DropoutModule(UserModule):
    """A user's module whose steps draw random numbers (dropout)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 2))


class CrashAt(pl.Callback):
    """A fault: training dies as ``epoch`` starts (after the previous one was saved)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            raise RuntimeError("injected crash")


def _fit_resumable(uri: str, folder, shuffle: str, extra=(), ckpt_path=None) -> str:
    """The set-up docs/integrations.md gives for reproducible, resumable traces."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    pl.seed_everything(0, verbose=False)
    trace = TraceCallback(ids="uid", labels="target", logits="scores", tracking_uri=uri)
    trainer = pl.Trainer(
        max_epochs=4,
        logger=False,
        callbacks=[
            trace,
            EpochSeed(0),
            ModelCheckpoint(dirpath=folder, save_last=True, save_on_train_epoch_end=True),
            *extra,
        ],
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        accelerator="cpu",
        deterministic=True,
    )
    generator = torch.Generator().manual_seed(7) if shuffle == "generator" else None
    train = DataLoader(Points(N_TRAIN, 0), batch_size=16, shuffle=True, generator=generator)
    val = DataLoader(Points(N_VAL, 1), batch_size=16)
    try:
        trainer.fit(DropoutModule(), train, val, ckpt_path=ckpt_path)
    except RuntimeError as exc:
        assert "injected crash" in str(exc)
    return trace.run_id_resolved


@pytest.mark.e2e
@pytest.mark.parametrize("shuffle", ["global", "generator"])
def test_a_resumed_user_run_is_bit_identical_to_an_uninterrupted_one(
    module_store, tmp_path, shuffle
) -> None:
    """Crash as epoch 2 of 4 starts, resume from Lightning's last.ckpt: every trace file
    equals the uninterrupted run's, value for value; so does a second uninterrupted run
    in the same process."""
    straight = _fit_resumable(module_store, tmp_path / "a", shuffle)
    again = _fit_resumable(module_store, tmp_path / "b", shuffle)
    crashed = _fit_resumable(module_store, tmp_path / "c", shuffle, [CrashAt(2)])
    client = MlflowClient(module_store)
    assert client.get_run(crashed).info.status == "FAILED"
    assert len(trace_files(module_store, crashed, "train")) == 2
    resumed = _fit_resumable(module_store, tmp_path / "c", shuffle, ckpt_path="last")
    assert resumed == crashed and client.get_run(crashed).info.status == "FINISHED"
    for split in ("train", "validation"):
        files = trace_files(module_store, straight, split)
        assert files == [f"traces/{split}/epoch={e:03d}.parquet" for e in range(4)]
        for run in (again, resumed):
            assert trace_files(module_store, run, split) == files
            for path in files:
                a, _ = load_trace(module_store, straight, path)
                b, _ = load_trace(module_store, run, path)
                pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_the_callback_reads_no_batch_on_the_host(module_store) -> None:
    """No host sync per batch: the callback's hooks and the recorder under them never read
    a later batch's tensors on the host during a traced fit (``tests/hostreads.py``)."""
    callback = TraceCallback(ids="uid", labels="target", logits="scores", tracking_uri=module_store)
    hooks = (TraceCallback.on_train_batch_end, TraceCallback.on_validation_batch_end)
    with HostReads(*hooks) as reads:
        _fit(callback, epochs=2)
    assert reads.calls == {}, f"host reads on a later batch: {dict(reads.calls)}"
    assert sum(reads.first.values()) > 0  # the counter sees the first batch's host check
    run_id = callback.run_id_resolved
    assert len(trace_files(module_store, run_id, "train")) == 2
