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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from soi_mlflow import process_state
from soi_mlflow.data.mixture import Mixture, MixtureSpec, validate_mixture
from soi_mlflow.errors import SoiInputError
from soi_mlflow.run_config import CONFIG_ARTIFACT, run_config_yaml
from soi_mlflow.seeds import check_seed
from soi_mlflow.tracking.health import (
    check_experiment_name,
    check_tracking,
    get_run,
    sigterm_raises,
)
from soi_mlflow.tracking.links import md_escape, set_description_section, soi_pages_note
from soi_mlflow.tracking.local import checkpoint_path, run_folder
from soi_mlflow.tracking.run import RunHandle, resolve_tracking_uri, soi_tags
from soi_mlflow.tracking.spool import Spool, end_follows, end_run
from soi_mlflow.tracking.trace_format import CAPTURE_MODES, SCHEMA_VERSION
from soi_mlflow.training_key import (
    TRAINING_KEY_TAG,
    resume_differences,
    run_params,
    training_key,
)

EXAMPLE_SPLITS = ("train", "validation", "test", "ood")


@dataclass
class TrainConfig:
    """Everything one training run needs; the defaults train the tiny encoder on CPU.

    The field docstrings are the command line's help (``soi_mlflow/run_config.py``)."""

    mixture: MixtureSpec = field(default_factory=MixtureSpec)
    """the data: suite, axis, members, OOD members, sampling"""
    epochs: int = 3
    """training epochs"""
    seed: int = 0
    """training seed: initialisation and example order"""
    model: str = "tiny"
    """tiny, a hub model name, or a local folder with a transformers model"""
    capture: Literal["train_pass", "eval_pass"] = "train_pass"
    """train trace from the training step's logits, or from an extra eval pass"""
    batch_size: int = 32
    """examples per training batch"""
    max_length: int = 64
    """tokens per example"""
    lr: float | None = None
    """learning rate (default: 1e-3 for tiny, 3e-5 for a pretrained encoder)"""
    weight_decay: float = 0.01
    """AdamW weight decay"""
    warmup_ratio: float = 0.1
    """share of the steps with a linear learning-rate warm-up"""
    experiment: str | None = None
    """MLflow experiment name (default soi-mlflow; under `mlflow run`, MLflow's)"""
    tracking_uri: str | None = None
    """MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)"""
    run_name: str | None = None
    """MLflow run name (default: <setting>-<members>-seed<seed>)"""
    parent_run_id: str | None = None
    """log as a child run of this MLflow run"""
    tags: dict[str, str] = field(default_factory=dict)
    """extra MLflow run tags, e.g. {team: nlp}"""
    stage: int = 1
    """the soi.stage tag: 1, or 2 for the second stage of two-stage fine-tuning"""
    init_from: str | None = None
    """start from a checkpoint folder or a model URI: models:/NAME/VERSION, runs:/RUN_ID/model"""
    log_checkpoint: bool = False
    """log the final weights as checkpoint/ (safetensors)"""
    log_model: bool = True
    """log the trained model as an MLflow Model (runs:/RUN_ID/model; docs/training.md)"""
    register_as: str | None = None
    """register the logged model under this name in the MLflow model registry"""
    affinity_every: int | None = field(default=None, metadata={"bare": 20})
    """measure lookahead task affinity every K steps (multi-member runs; given alone, 20)"""
    affinity_step: Literal["gradient", "optimizer"] = "gradient"
    """the affinity lookahead: gradient (TAG: lr x gradient) or optimizer (the run's AdamW step)"""
    accelerator: str = "auto"
    """Lightning accelerator: auto, cpu, gpu, ..."""
    devices: int = 1
    """processes or GPUs (DDP when > 1)"""
    strategy: str = "auto"
    """Lightning strategy, e.g. ddp (the command line picks ddp for auto when devices > 1)"""
    progress: bool = True
    """show training progress"""
    analyze: bool = True
    """end with the run's analysis: SOI, tables, the data map html/datamap_train.html"""
    resume: str | None = None
    """a run id: continue that run from its last local checkpoint (docs/reliability.md)"""
    checkpoint_every: int = 1
    """save a resume checkpoint every K epochs (0: never)"""
    keep_checkpoint: bool = False
    """keep the local resume checkpoint after the run finishes"""

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else (1e-3 if self.model == "tiny" else 3e-5)


@dataclass
class TrainResult:
    run_id: str | None  # None on the non-zero ranks of a distributed run
    experiment_id: str | None
    tracking_uri: str | None
    metrics: dict[str, float]
    ui_command: str | None
    module: Any = None  # the trained LightningModule, in this process
    affinity: Any = None  # the AffinityCallback, when affinity was measured
    analysis: Any = None  # the AnalysisOutcome, when the run was analysed


def validate_config(config: TrainConfig) -> None:
    """Refuse bad settings before anything is loaded or trained."""
    validate_mixture(config.mixture)
    check_seed(config.seed, "seed")
    if not isinstance(config.checkpoint_every, int) or config.checkpoint_every < 0:
        raise SoiInputError(
            f"checkpoint-every must be 0 (off) or a positive integer, got "
            f"{config.checkpoint_every!r}"
        )
    if config.resume is not None and config.checkpoint_every == 0:
        raise SoiInputError("resume needs checkpoints: checkpoint-every must be positive")
    if config.experiment is not None:
        check_experiment_name(config.experiment)
    if config.epochs <= 0:
        raise SoiInputError(f"epochs must be a positive integer, got {config.epochs!r}")
    if config.capture not in CAPTURE_MODES:
        raise SoiInputError(
            f"capture: expected one of {', '.join(CAPTURE_MODES)}, got {config.capture!r}"
        )
    for name in ("batch_size", "max_length", "devices"):
        if getattr(config, name) <= 0:
            raise SoiInputError(f"{name} must be a positive integer, got {getattr(config, name)!r}")
    if config.learning_rate <= 0:
        raise SoiInputError(f"lr must be > 0, got {config.lr!r}")
    if config.model != "tiny" and (
        config.model.startswith((".", "/")) and not Path(config.model).is_dir()
    ):
        raise SoiInputError(
            f"model path {config.model!r} is not a folder with a transformers model"
        )
    if config.affinity_every is not None:
        if config.affinity_every <= 0:
            raise SoiInputError(
                f"affinity-every must be a positive integer, got {config.affinity_every!r}"
            )
        if config.devices > 1:
            raise SoiInputError("--affinity-every works with one process; use --devices 1")
        from soi_mlflow.model.affinity import check_step

        check_step(config.affinity_step)
    _validate_model_options(config)


def _validate_model_options(config: TrainConfig) -> None:
    from soi_mlflow.model.mlflow_model import check_model_uri, check_registered_name, is_model_uri

    if config.register_as is not None:
        if not config.log_model:
            raise SoiInputError("register-as needs the logged model: drop --log-model false")
        check_registered_name(config.register_as)
    if is_model_uri(config.init_from):
        check_model_uri(str(config.init_from))
    elif config.init_from is not None:
        from soi_mlflow.model.checkpoint import check_checkpoint

        check_checkpoint(Path(config.init_from))


def preflight(config: TrainConfig) -> Path | None:
    """Check the tracking side before any data is loaded: the store answers and can be
    written, and the parent run, ``MLFLOW_RUN_ID`` and the run to resume exist. Fails in
    seconds with a message naming the URI (``tracking/health.py``). Returns the checkpoint
    to resume from, if resuming."""
    from mlflow import MlflowClient

    from soi_mlflow.model.mlflow_model import is_model_uri, model_run_id

    uri = resolve_tracking_uri(config.tracking_uri)
    check_tracking(uri)
    client = MlflowClient(uri)
    if config.experiment is not None:
        found = client.get_experiment_by_name(config.experiment)
        if found is not None and found.lifecycle_stage == "deleted":
            raise SoiInputError(
                f"experiment {config.experiment!r} is deleted in {uri}; restore it or pick "
                "another name"
            )
    if is_model_uri(config.init_from):
        model_run_id(str(config.init_from), uri)  # the model exists: fail now, not after data
    if config.parent_run_id is not None:
        get_run(client, config.parent_run_id, uri, "parent run id")
    elif os.environ.get("MLFLOW_RUN_ID") and config.resume is None:
        get_run(client, os.environ["MLFLOW_RUN_ID"], uri, "MLFLOW_RUN_ID")
    if config.resume is None:
        return None
    run = get_run(client, config.resume, uri, "resume run id")
    if run.info.status == "FINISHED":
        raise SoiInputError(f"run {config.resume} already FINISHED; there is nothing to resume")
    ckpt = checkpoint_path(config.resume)
    if not ckpt.is_file():
        raise SoiInputError(
            f"run {config.resume}: no resume checkpoint at {ckpt} (checkpoints are kept on "
            "the machine that trained; set SOI_MLFLOW_CACHE to the same folder there)"
        )
    differ = resume_differences(config, run.data.params, run.data.tags)
    if differ:
        raise SoiInputError(
            f"run {config.resume} was trained with other settings; resume with the same "
            f"ones: {'; '.join(differ)}"
        )
    return ckpt


def run_tags(config: TrainConfig) -> dict[str, str]:
    spec = config.mixture
    tags = soi_tags(
        axis=spec.axis,
        setting=spec.setting,
        members=list(spec.members),
        ood=list(spec.ood) or None,
        seed=config.seed,
        stage=config.stage,
        capture=config.capture,
        trace_schema=SCHEMA_VERSION,
        model=config.model,
    )
    tags[TRAINING_KEY_TAG] = training_key(config)  # what transfer --reuse matches on
    return tags | dict(config.tags)


def training_note(config: TrainConfig) -> str:
    """The run's description (Markdown): what was trained and where to look."""
    spec = config.mixture
    members = ", ".join(md_escape(m) for m in spec.members)
    what = "Multi-setting" if spec.setting == "multi" else "Single-setting"
    text = (
        f"**{what} training run** on {members} ({md_escape(spec.axis)} axis), "
        f"seed {config.seed}, {config.epochs} epochs, encoder {md_escape(config.model)}"
    )
    if spec.ood:
        text += f"; held out (OOD): {', '.join(md_escape(m) for m in spec.ood)}"
    if config.init_from is not None:
        from soi_mlflow.model.mlflow_model import is_model_uri

        text += (
            f"; continued from the model {md_escape(config.init_from)}"
            if is_model_uri(config.init_from)
            else "; continued from a stage-1 checkpoint"
        )
    text += (
        ". Metrics per epoch: `val/<member>/acc`, `test/<member>/acc`, "
        "`ood/<member>/acc`; per-example traces under `traces/<split>/`, examples under "
        "`examples/`. "
        + (
            "The run ends with its analysis: see the Analysis section below."
            if config.analyze
            else "`soi-mlflow analyze --run-id` adds an interactive data map."
        )
    )
    if config.log_model:
        text += (
            " The trained model is the logged MLflow Model `model` (`mlflow.pyfunc."
            'load_model("runs:/<run id>/model")`, no pickle)'
            + (f", registered as {md_escape(config.register_as)}" if config.register_as else "")
            + "."
        )
    return text


def default_run_name(config: TrainConfig) -> str:
    spec = config.mixture
    return f"{spec.setting}-{'+'.join(spec.members)}-seed{config.seed}"


def _log_examples(run: RunHandle, mixture: Mixture) -> None:
    """Example tables (``examples/<split>.parquet``, through the run's spool: the trace
    recorder sends them) and the data sets as run inputs."""
    spool = Spool(run.run_id, run.tracking_uri)
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
            run.log_dataset(
                part[["example_id", "label"]].reset_index(drop=True), f"{member}/{split}", split
            )


def build_model(config: TrainConfig, mixture: Mixture) -> tuple[Any, Any]:
    """The module and tokenizer: fresh, or from ``config.init_from`` (encoder, tokenizer
    and the heads of the tasks it shares with this mixture)."""
    from soi_mlflow.model.mlflow_model import is_model_uri, model_checkpoint

    if is_model_uri(config.init_from):
        uri = resolve_tracking_uri(config.tracking_uri)
        with model_checkpoint(str(config.init_from), uri) as folder:
            return _build_model(config, mixture, folder)
    return _build_model(config, mixture, Path(config.init_from) if config.init_from else None)


def _build_model(config: TrainConfig, mixture: Mixture, init: Path | None) -> tuple[Any, Any]:
    from soi_mlflow.model.encoder import build_encoder, build_pretrained
    from soi_mlflow.model.module import MultiTaskClassifier

    if init is not None:
        encoder, tokenizer = build_pretrained(str(init / "encoder"), config.max_length)
    else:
        texts = list(mixture.train["text"]) + [t for t in mixture.train["text_pair"] if t]
        encoder, tokenizer = build_encoder(config.model, texts, config.max_length, config.seed)
    module = MultiTaskClassifier(
        encoder,
        [len(names) for names in mixture.tasks.values()],
        lr=config.learning_rate,
        weight_decay=config.weight_decay,
        warmup_ratio=config.warmup_ratio,
    )
    if init is not None:
        from soi_mlflow.model.checkpoint import load_heads

        load_heads(module, mixture.tasks, init)
    return module, tokenizer


def _log_weights(
    run: RunHandle, config: TrainConfig, module: Any, tokenizer: Any, mixture: Mixture
) -> None:
    """The final weights as ``checkpoint/`` (through the run's spool) and/or the run's
    MLflow Model (``model/``). A model that cannot be logged (the server went away)
    leaves its weights in the spool as ``checkpoint/`` instead: nothing trained is lost."""
    import sys

    from soi_mlflow.model.checkpoint import save_checkpoint
    from soi_mlflow.model.mlflow_model import input_example, log_model

    spool = Spool(run.run_id, run.tracking_uri)
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
                    f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); its weights "
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
) -> Any:
    """The Lightning trace adapter set up for a mixture's batches and module.

    The same adapter users put on their own modules: batches carry member and task
    indices into the mixture's names, steps return each row's (padded) logits.
    ``run_id`` may be a callable that opens the run when training starts.
    """
    from soi_mlflow.lightning import TraceCallback

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
    this returns (``soi_mlflow/process_state.py``)."""
    validate_config(config)
    resume_ckpt = preflight(config)
    with sigterm_raises(), process_state.kept():  # Lightning's seeds, flags, variables
        return _train(config, resume_ckpt)


def _train(config: TrainConfig, resume_ckpt: Path | None) -> TrainResult:
    import lightning.pytorch as pl

    from soi_mlflow.checkpointing import EpochCheckpoint, EpochSeed
    from soi_mlflow.data.datamodule import MixtureDataModule

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

    def open_run() -> str:  # not called when resuming: the checkpoint names the run
        run = RunHandle.open(
            config.tracking_uri,
            config.experiment,
            config.run_name or default_run_name(config),
            run_tags(config),
            config.parent_run_id,
        )
        opened.append(run)  # before anything else can fail: the run must be ended
        end_follows(run.run_id)  # end_run below reports the run if incomplete, not the recorder
        run.log_params(run_params(config))
        run.client.log_text(run.run_id, run_config_yaml(config), CONFIG_ARTIFACT)
        note = f"{training_note(config)}\n\n{soi_pages_note(run.run_id)}"
        set_description_section(run.client, run.run_id, None, note)
        _log_examples(run, mixture)
        return run.run_id

    callback = mixture_trace_callback(
        mixture,
        [split for split, _ in data.eval_keys],
        trace_train=config.capture == "train_pass",
        run_id=open_run,
        tracking_uri=resolve_tracking_uri(config.tracking_uri),
    )
    callbacks: list[pl.Callback] = [callback, EpochSeed(config.seed)]
    affinity = None
    if config.affinity_every is not None:
        from soi_mlflow.model.affinity import AffinityCallback

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
        from soi_mlflow.epoch_bar import EpochBar

        callbacks.append(EpochBar())
    trainer = pl.Trainer(
        max_epochs=config.epochs,
        accelerator=config.accelerator,
        devices=config.devices,
        strategy=config.strategy,
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
            opened.append(RunHandle.attach(config.tracking_uri, config.resume))
            end_follows(opened[-1].run_id)
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
            end = opened[0]
            end_run(end.client, end.tracking_uri, end.run_id, cause or exc, end.created)
            if isinstance(cause, KeyboardInterrupt):  # so a study's parent ends KILLED too
                raise cause from None
        raise
    if run is None:
        return TrainResult(None, None, None, {}, None, module, affinity)
    # after whatever still waits in the spool (an outage: stderr names the run and `sync`)
    end_run(run.client, run.tracking_uri, run.run_id, None, terminate=run.created)
    if saver is not None and not config.keep_checkpoint:
        shutil.rmtree(run_folder(run.run_id) / "checkpoint", ignore_errors=True)
    analysis = None
    if config.analyze:  # never raises: a finished run stays finished
        from soi_mlflow.analysis.after_training import analyze_after_training

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
