"""What one training run needs (``TrainConfig``), what it gives back (``TrainResult``),
and the checks of its settings before anything is loaded."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from soi_mlflow.common.seeds import check_seed
from soi_mlflow.data.mixture import MixtureSpec, validate_mixture
from soi_mlflow.errors import SoiInputError
from soi_mlflow.model.adapters import PEFT_METHODS
from soi_mlflow.model.backbone import POOLINGS
from soi_mlflow.model.mlflow_model import check_model_uri, check_registered_name, is_model_uri
from soi_mlflow.tracking.health import (
    check_experiment_name,
)
from soi_mlflow.tracking.names import BUILTIN_SPLITS
from soi_mlflow.tracking.store import TRACKING_URI_HELP
from soi_mlflow.tracking.trace_format import CAPTURE_MODES

PRECISIONS = ("32", "bf16-mixed", "16-mixed")  # Lightning's names
EXAMPLE_SPLITS = BUILTIN_SPLITS  # the splits a training logs the examples of


@dataclass
class TrainConfig:
    """Everything one training run needs; the defaults train the tiny encoder on CPU.

    The field docstrings are the command line's help (``soi_mlflow/training/settings_io.py``)."""

    mixture: MixtureSpec = field(default_factory=MixtureSpec)
    """the data: suite, axis, members, OOD members, sampling"""
    epochs: int = 3
    """training epochs"""
    seed: int = 0
    """training seed: initialisation and example order"""
    model: str = "tiny"
    """tiny, a hub model name, or a local folder with a transformers model"""
    pooling: Literal["first", "last", "mean"] | None = None
    """the hidden state the heads read: first token, last real token, or the mean (default:
    last for a decoder-only model, first for an encoder)"""
    capture: Literal["train_pass", "eval_pass"] = "train_pass"
    """train trace from the training step's logits, or from an extra eval pass"""
    batch_size: int = 32
    """examples per training batch"""
    max_length: int = 64
    """tokens per example"""
    grad_accum: int = 1
    """batches whose gradients make one optimizer step (the effective batch, batch-size x
    grad-accum x devices, is logged as the param effective_batch_size)"""
    precision: str = "32"
    """Lightning's training precision: 32, bf16-mixed or 16-mixed (GPU); the heads, logits
    and trace probabilities stay float32"""
    gradient_checkpointing: bool = False
    """recompute the backbone's activations in the backward pass: less memory, more time"""
    peft: Literal["lora"] | None = None
    """train a parameter-efficient adapter (lora) on a frozen backbone; heads train in full"""
    lora_r: int = 8
    """LoRA rank"""
    lora_alpha: int = 16
    """LoRA scaling alpha"""
    lora_dropout: float = 0.05
    """dropout on LoRA's input"""
    lora_targets: str = "auto"
    """modules LoRA adapts, comma-separated (auto: c_attn for GPT-2, q_proj,v_proj for
    Llama/Qwen2, query,value for BERT)"""
    lr: float | None = None
    """learning rate (default: 1e-3 for tiny, 3e-5 for a pretrained encoder)"""
    weight_decay: float = 0.01
    """AdamW weight decay"""
    warmup_ratio: float = 0.1
    """share of the steps with a linear learning-rate warm-up"""
    experiment: str | None = None
    """MLflow experiment name (default soi-mlflow; under `mlflow run`, MLflow's)"""
    tracking_uri: str | None = field(default=None, metadata={"help": TRACKING_URI_HELP})
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
    trace_shards: bool | None = None
    """under DDP: each rank writes its own trace shards (true), rank 0 gathers the rows
    (false), or shards past 1M rows an epoch (default)"""
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
    if config.precision not in PRECISIONS:
        raise SoiInputError(
            f"precision: expected one of {', '.join(PRECISIONS)}, got {config.precision!r}"
        )
    if config.peft is not None:
        if config.peft not in PEFT_METHODS:
            raise SoiInputError(
                f"peft: expected one of {', '.join(PEFT_METHODS)}, got {config.peft!r}"
            )
        if config.lora_r <= 0 or config.lora_alpha <= 0:
            raise SoiInputError("lora-r and lora-alpha must be positive integers")
        if not 0 <= config.lora_dropout < 1:
            raise SoiInputError(f"lora-dropout must be in [0, 1), got {config.lora_dropout!r}")
    for name in ("batch_size", "max_length", "devices", "grad_accum"):
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
    if config.pooling is not None and config.pooling not in POOLINGS:
        raise SoiInputError(
            f"pooling: expected one of {', '.join(POOLINGS)}, got {config.pooling!r}"
        )
    if config.affinity_every is not None:
        if config.affinity_every <= 0:
            raise SoiInputError(
                f"affinity-every must be a positive integer, got {config.affinity_every!r}"
            )
        if config.devices > 1:
            raise SoiInputError("--affinity-every works with one process; use --devices 1")
        from soi_mlflow.callbacks.affinity import check_step  # deferred: lightning, torch

        check_step(config.affinity_step)
    _validate_model_options(config)


def _validate_model_options(config: TrainConfig) -> None:
    if config.register_as is not None:
        if not config.log_model:
            raise SoiInputError("register-as needs the logged model: drop --log-model false")
        check_registered_name(config.register_as)
    if is_model_uri(config.init_from):
        check_model_uri(str(config.init_from))
    elif config.init_from is not None:
        from soi_mlflow.model.checkpoint import check_checkpoint  # deferred: torch

        check_checkpoint(Path(config.init_from))
