"""One training run: a mixture, an encoder, the trace callback, one MLflow run.

``train(TrainConfig(...))`` checks every input before any work, builds the data and the
model, and trains with Lightning; the trace callback opens the MLflow run (on rank 0
only) and writes traces, metrics and example tables as training goes. Once the run has
ended, unless ``analyze=False``, it is analysed as ``soi-mlflow analyze --run-id`` does
(``analysis/after_training.py``), so one training shows its data map in the MLflow UI.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from soi_mlflow.analysis.after_training import analyze_after_training
from soi_mlflow.common import process_state
from soi_mlflow.data.mixture import Mixture
from soi_mlflow.errors import first_line
from soi_mlflow.model.mlflow_model import input_example, is_model_uri, log_model, model_checkpoint
from soi_mlflow.tracking.health import (
    sigterm_raises,
)
from soi_mlflow.tracking.links import set_description_section, soi_pages_note
from soi_mlflow.tracking.local import checkpoint_path, run_folder
from soi_mlflow.tracking.run import RunHandle
from soi_mlflow.tracking.run_end import end_follows
from soi_mlflow.tracking.run_open import open_run
from soi_mlflow.tracking.store import resolve_tracking_uri
from soi_mlflow.training.config import EXAMPLE_SPLITS, TrainConfig, TrainResult, validate_config
from soi_mlflow.training.describe import default_run_name, run_tags, training_note
from soi_mlflow.training.key import (
    run_params,
)
from soi_mlflow.training.model_build import build_module
from soi_mlflow.training.settings_io import CONFIG_ARTIFACT, run_config_yaml
from soi_mlflow.training.store_checks import preflight


def _log_examples(run: RunHandle, mixture: Mixture) -> None:
    """Example tables (``examples/<split>.parquet``, through the run's spool: the trace
    recorder sends them) and the data sets as run inputs."""
    spool, datasets = run.spool, []
    for split in EXAMPLE_SPLITS:
        if split == "ood" and not mixture.spec.ood:
            continue
        table = mixture.example_table(split)
        spool.put_artifact(
            f"{split}.parquet",
            "examples",
            lambda p, t=table: t.to_parquet(p, compression="zstd", index=False),
        )
        for member, part in table.groupby("member", sort=False):
            frame = part[["example_id", "label"]].reset_index(drop=True)
            datasets.append((frame, f"{member}/{split}", split))
    run.log_datasets(datasets)  # one request, not one per member and split


def build_model(config: TrainConfig, mixture: Mixture) -> tuple[Any, Any]:
    """The module and tokenizer: fresh, or from ``config.init_from`` (encoder, tokenizer
    and the heads of the tasks it shares with this mixture)."""
    if is_model_uri(config.init_from):
        uri = resolve_tracking_uri(config.tracking_uri)
        with model_checkpoint(str(config.init_from), uri) as folder:
            return build_module(config, mixture, folder)
    return build_module(config, mixture, Path(config.init_from) if config.init_from else None)


def _log_weights(
    run: RunHandle, config: TrainConfig, module: Any, tokenizer: Any, mixture: Mixture
) -> None:
    """The final weights as ``checkpoint/`` (through the run's spool) and/or the run's
    MLflow Model (``model/``). A model that cannot be logged (the server went away)
    leaves its weights in the spool as ``checkpoint/`` instead: nothing trained is lost."""
    import sys

    from soi_mlflow.model.checkpoint import save_checkpoint  # deferred: torch

    spool = run.spool
    with tempfile.TemporaryDirectory(prefix="soi-ckpt-") as tmp:
        folder = save_checkpoint(module, tokenizer, mixture.tasks, Path(tmp) / "checkpoint")
        spool_checkpoint = config.log_checkpoint
        if config.log_model:
            table = mixture.example_table("validation").groupby("member", sort=False).head(1)
            table["task"] = [mixture.suite.member(m).task for m in table["member"]]
            try:
                log_model(
                    run.tracking_uri,
                    run.run_id,
                    folder,
                    input_example(table),
                    config.register_as,
                    step=config.epochs - 1,
                )
            except Exception as exc:  # an outage must not fail a finished training
                print(
                    f"soi-mlflow: run {run.run_id}: the MLflow Model was not logged "
                    f"({first_line(exc, 200)}); its weights "
                    "go to the run's checkpoint/ through the spool instead",
                    file=sys.stderr,
                )
                spool_checkpoint = True
        if spool_checkpoint:
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                parts = path.relative_to(folder).parts[:-1]
                spool.put_file(path, "/".join(("checkpoint", *parts)))


def mixture_trace_callback(
    mixture: Mixture,
    eval_splits: list[str],
    *,
    trace_train: bool,
    run_id: Any,
    tracking_uri: str,
    shards: bool | None = None,
) -> Any:
    """The Lightning trace adapter set up for a mixture's batches and module.

    The same adapter users put on their own modules: batches carry member and task
    indices into the mixture's names, steps return each row's (padded) logits.
    ``run_id`` may be a callable that opens the run when training starts (returning its
    :class:`RunHandle`, which the trace recorder then writes through).
    """
    from soi_mlflow.lightning import TraceCallback  # deferred: lightning, torch

    return TraceCallback(
        labels="label",
        member="member_idx",
        task="task_idx",
        members=list(mixture.all_members),
        label_names={task: list(names) for task, names in mixture.tasks.items()},
        eval_splits=eval_splits,
        trace_train=trace_train,
        run_id=run_id,
        tracking_uri=tracking_uri,
        axis=mixture.spec.axis,
        analyze=False,  # train() analyses once the run has ended, not the adapter
        shards=shards,
    )


def train(config: TrainConfig) -> TrainResult:
    """Train one model on ``config.mixture`` and trace it into one MLflow run.

    Settings and the tracking store are checked before any data is loaded
    (:func:`preflight`). Whatever ends training early (an exception in any phase, Ctrl-C,
    SIGTERM), the run ends FAILED or KILLED with the reason in ``soi.end_reason``.
    ``config.resume`` continues a run from its last checkpoint, in the same run. With
    ``config.analyze`` the ended run is then analysed (:attr:`TrainResult.analysis`); a
    failed analysis is a warning line on stderr, never a failed training. The process's
    global state (environment, random generators, torch flags, logging) is as it was when
    this returns (``soi_mlflow/common/process_state.py``)."""
    validate_config(config)
    resume_ckpt = preflight(config)
    with sigterm_raises(), process_state.kept():  # Lightning's seeds, flags, variables
        return _train(config, resume_ckpt)


def _train(config: TrainConfig, resume_ckpt: Path | None) -> TrainResult:
    import lightning.pytorch as pl

    from soi_mlflow.callbacks.resume import EpochCheckpoint, EpochSeed  # deferred: lightning, torch
    from soi_mlflow.data.datamodule import MixtureDataModule  # deferred: lightning, torch

    pl.seed_everything(config.seed, workers=True, verbose=False)
    mixture = Mixture(config.mixture)
    module, tokenizer = build_model(config, mixture)
    data = MixtureDataModule(
        mixture,
        tokenizer,
        config.max_length,
        config.batch_size,
        config.seed,
        eval_train=config.capture == "eval_pass",
    )
    opened: list[RunHandle] = []  # the run, once rank 0 has opened it

    def open_training_run() -> RunHandle:  # not called when resuming: the checkpoint names it
        run = open_run(
            config.tracking_uri,
            experiment=config.experiment,
            run_name=config.run_name or default_run_name(config),
            tags=run_tags(config),
            parent_run_id=config.parent_run_id,
        )
        opened.append(run)  # before anything else can fail: the run must be ended
        end_follows(run.run_id)  # end_run below reports the run if incomplete, not the recorder
        run.log_params(run_params(config) | module.backbone_params)
        run.client.log_text(run.run_id, run_config_yaml(config), CONFIG_ARTIFACT)
        note = f"{training_note(config)}\n\n{soi_pages_note(run.run_id)}"
        set_description_section(run.client, run.run_id, None, note)
        _log_examples(run, mixture)
        return run  # handed down: the trace recorder writes through its client and spool

    callback = mixture_trace_callback(
        mixture,
        [split for split, _ in data.eval_keys],
        trace_train=config.capture == "train_pass",
        run_id=open_training_run,
        tracking_uri=resolve_tracking_uri(config.tracking_uri),
        shards=config.trace_shards,
    )
    callbacks: list[pl.Callback] = [callback, EpochSeed(config.seed)]
    affinity = None
    if config.affinity_every is not None:
        from soi_mlflow.callbacks.affinity import AffinityCallback  # deferred: lightning, torch

        affinity = AffinityCallback(
            list(mixture.spec.members),
            config.affinity_every,
            lambda: opened[0] if opened else None,
            config.affinity_step,
        )
        callbacks.append(affinity)
    saver: EpochCheckpoint | None = None
    if config.checkpoint_every:
        # the run id is known only once the run is open: the path resolves lazily
        saver = EpochCheckpoint(lambda: checkpoint_path(opened[0].run_id), config.checkpoint_every)
        callbacks.append(saver)
    if config.progress:
        from soi_mlflow.callbacks.epoch_bar import EpochBar  # deferred: lightning

        callbacks.append(EpochBar())
    trainer = pl.Trainer(
        max_epochs=config.epochs,
        accelerator=config.accelerator,
        devices=config.devices,
        strategy=config.strategy,
        precision=config.precision,
        accumulate_grad_batches=config.grad_accum,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=config.progress,
        num_sanity_val_steps=0,
        deterministic="warn",
        callbacks=callbacks,
        default_root_dir=os.environ.get("SOI_MLFLOW_LIGHTNING_DIR", tempfile.gettempdir()),
    )
    try:
        if config.resume is not None:
            resumed = open_run(
                config.tracking_uri,
                run_id=config.resume,
                resume=True,
                owned=True,  # RUNNING after a SIGKILL, or ended: this process ends it
                what="resume run id",
            )
            opened.append(resumed)
            end_follows(resumed.run_id)
        trainer.fit(
            module,
            datamodule=data,
            ckpt_path=str(resume_ckpt) if resume_ckpt else None,
            weights_only=True,
        )
        run = opened[0] if opened else None
        if run is not None and (config.log_checkpoint or config.log_model):
            _log_weights(run, config, module, tokenizer, mixture)
    except BaseException as exc:
        if opened:
            # Lightning turns Ctrl-C into SystemExit(1): the callback saw the real cause
            cause = callback.exception if isinstance(exc, SystemExit) else None
            opened[0].end(cause or exc)
            if isinstance(cause, KeyboardInterrupt):  # so a study's parent ends KILLED too
                raise cause from None
        raise
    if run is None:
        return TrainResult(None, None, None, {}, None, module, affinity)
    # after whatever still waits in the spool (an outage: stderr names the run and `sync`)
    run.end()
    if saver is not None and not config.keep_checkpoint:
        shutil.rmtree(run_folder(run.run_id) / "checkpoint", ignore_errors=True)
    analysis = None
    if config.analyze:  # never raises: a finished run stays finished
        analysis = analyze_after_training(run.run_id, run.tracking_uri, quiet=True)
    return TrainResult(
        run.run_id,
        run.experiment_id,
        run.tracking_uri,
        callback.last_metrics,
        run.ui_command(),
        module,
        affinity,
        analysis,
    )
