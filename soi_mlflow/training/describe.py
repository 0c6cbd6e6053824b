"""What a training run says about itself: its tags, its description, its name."""

from __future__ import annotations

from soi_mlflow.model.mlflow_model import is_model_uri
from soi_mlflow.tracking.links import md_escape
from soi_mlflow.tracking.run import soi_tags
from soi_mlflow.tracking.trace_format import SCHEMA_VERSION
from soi_mlflow.training.config import TrainConfig
from soi_mlflow.training.key import (
    TRAINING_KEY_TAG,
    training_key,
)


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
