"""The training settings: one table of every field of ``TrainConfig`` and its
``MixtureSpec``, and what follows from it: the run params, the training key and the
resume check.

``SETTINGS`` says for each field whether it is in the training key (it changes what is
trained or scored), whether it is logged as a run param, and whether a resume must give
the value the run logged; a field left out of any of them says why. ``run_params``,
``training_settings`` (the key) and ``resume_differences`` read the table, so a setting
added to the dataclasses is classified there once (``tests/test_training_settings.py``
fails on a field the table misses).

The training key: a study that reuses finished runs (``transfer --reuse``) must not let a
run trained on other data or settings stand in for the one it needs: a learning-curve
child trained on 50 examples of a member is no full-data baseline. Every run ``train``
logs carries its key as the tag ``soi.training_key``; a run is reused only when its key
equals the key of the run asked for. Runs logged before the key existed carry none and
are never reused. The suite is keyed by its content (a YAML file), the starting weights
by the checkpoint folder's content, the training subset by a digest of its ids.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from soi_mlflow.tracking.tags import TRAINING_KEY

if TYPE_CHECKING:
    from soi_mlflow.training import TrainConfig

TRAINING_KEY_TAG = TRAINING_KEY  # the tag's name (tracking/tags.py)
PARAM_LIMIT = 6000  # MLflow's longest param value


def _digest_bytes(chunks) -> str:
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()


def folder_digest(folder: str | Path) -> str:
    """SHA-256 over a folder's files (relative paths and contents, in sorted order)."""
    root = Path(folder)
    files = sorted(p for p in root.rglob("*") if p.is_file())

    def chunks():
        for path in files:
            yield path.relative_to(root).as_posix().encode() + b"\0"
            yield path.read_bytes()

    return _digest_bytes(chunks())


def _suite(suite: Any) -> Any:
    """A suite by name (built-in and presets), by content (a YAML file), or by its
    definition (a Python-built ``SuiteSpec``)."""
    if isinstance(suite, (str, Path)):
        path = Path(suite)
        if path.is_file():
            return {"file": _digest_bytes([path.read_bytes()])}
        return str(suite)
    return {"name": suite.name, "definition": repr(suite)}


def _suite_name(suite: Any) -> str:
    return str(suite) if isinstance(suite, (str, Path)) else suite.name


def _start(init_from: str) -> str:
    path = Path(init_from)
    return folder_digest(path) if path.is_dir() else init_from


def _ids_digest(ids: frozenset[int]) -> str:
    return _digest_bytes([",".join(map(str, sorted(ids))).encode()])


def _caps(caps: tuple[tuple[str, int], ...]) -> str | None:
    return ",".join(f"{m}={n}" for m, n in caps) or None


def _as_is(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class Setting:
    """One field of ``TrainConfig`` (``mixture.<name>``: of its ``MixtureSpec``)."""

    path: str
    """the field, from a ``TrainConfig``"""
    key: Callable[[Any], Any] | None = _as_is
    """its form in the training key (JSON-able); None: not in the key"""
    param: Callable[[Any], Any] | None = _as_is
    """its form as a run param; None: not logged"""
    resume: bool = True
    """a resume must give the value the run logged (needs ``param``)"""
    why: str = ""
    """why it is left out of the key, the params or the resume check"""
    read: Callable[[Any], Any] | None = None
    """its value from the object that holds it (default: the field's)"""
    when: Callable[[Any], bool] | None = None
    """it applies only when this holds of that object (else its value is None)"""
    param_as: str | None = None
    """the param's name (default: the field's)"""

    @property
    def field(self) -> str:
        """The field's name (and its name in the key)."""
        return self.path.rpartition(".")[2]

    @property
    def param_name(self) -> str:
        return self.param_as or self.field

    def applies(self, config: TrainConfig) -> bool:
        return self.when is None or self.when(self._holder(config))

    def value(self, config: TrainConfig) -> Any:
        """The setting's value in ``config`` (None where it does not apply)."""
        holder = self._holder(config)
        if self.when is not None and not self.when(holder):
            return None
        return self.read(holder) if self.read else getattr(holder, self.field)

    def key_value(self, config: TrainConfig) -> Any:
        value = self.value(config)
        return None if value is None or self.key is None else self.key(value)

    def param_value(self, config: TrainConfig) -> Any:
        value = self.value(config)
        return None if value is None or self.param is None else self.param(value)

    def _holder(self, config: TrainConfig) -> Any:
        holder: Any = config
        for name in self.path.split(".")[:-1]:
            holder = getattr(holder, name)
        return holder


def _records(path: str, why: str) -> Setting:
    """A field that is neither trained on nor a run param."""
    return Setting(path, key=None, param=None, resume=False, why=why)


SETTINGS: tuple[Setting, ...] = (
    # -- the data (MixtureSpec) --
    Setting("mixture.suite", key=_suite, param=_suite_name),
    Setting("mixture.axis"),
    Setting("mixture.members", key=list, param=",".join),
    Setting(
        "mixture.ood",
        key=None,
        param=",".join,
        why="OOD members are evaluated, never trained on: not in the key",
    ),
    Setting("mixture.sampling"),
    Setting("mixture.temperature", when=lambda spec: spec.sampling == "temperature"),
    Setting("mixture.max_examples"),
    Setting(
        "mixture.member_max_examples",
        key=lambda caps: sorted([m, n] for m, n in caps),
        param=_caps,
    ),
    Setting("mixture.data_seed"),
    Setting("mixture.data_dir", key=str, param=str),
    Setting("mixture.eval_max_examples"),
    Setting("mixture.train_ids", key=_ids_digest, param=len, param_as="train_examples"),
    # -- training (TrainConfig) --
    Setting("epochs", resume=False, why="a resumed run may train for more epochs"),
    Setting("seed"),
    Setting("model"),
    Setting(
        "pooling",
        param=None,
        resume=False,
        why="unset, it follows the architecture: train logs the pooling used as the param "
        "pooling; the key holds what was asked",
    ),
    Setting("peft"),
    *(
        Setting(name, when=lambda config: config.peft is not None)
        for name in ("lora_r", "lora_alpha", "lora_dropout", "lora_targets")
    ),
    Setting("capture"),
    Setting("batch_size"),
    Setting("max_length"),
    Setting("grad_accum"),
    Setting("precision"),
    Setting(
        "gradient_checkpointing",
        key=None,
        resume=False,
        why="recomputes the same activations (the same dropout): memory, not what is learnt",
    ),
    Setting("lr", read=lambda config: config.learning_rate),
    Setting("weight_decay"),
    Setting("warmup_ratio"),
    Setting("devices"),
    Setting("strategy"),
    Setting("init_from", key=_start),
    Setting("affinity_every"),  # affinity measurement runs extra forward passes
    Setting("affinity_step", when=lambda config: config.affinity_every is not None),
    _records("accelerator", "where it runs, not what it learns; a resume may move device"),
    _records("experiment", "where the run is recorded"),
    _records("tracking_uri", "where the run is recorded"),
    _records("run_name", "a label"),
    _records("parent_run_id", "links the run into a study"),
    _records("tags", "labels; the soi.* tags carry their own settings"),
    _records("stage", "the soi.stage tag; a stage-2 run differs by init_from and train_ids"),
    _records("log_checkpoint", "what is kept after training"),
    _records("log_model", "what is kept after training"),
    _records("register_as", "what is kept after training"),
    _records("progress", "display only"),
    _records("trace_shards", "how traces are written under DDP; the rows are the same"),
    _records("analyze", "runs after training ends"),
    _records("resume", "which run to continue, not how it trains"),
    _records("checkpoint_every", "resume checkpoints; a resumed run is bit-identical"),
    _records("keep_checkpoint", "resume checkpoints; a resumed run is bit-identical"),
)


def run_params(config: TrainConfig) -> dict[str, Any]:
    """The run params ``train`` logs (None: not logged)."""
    return {s.param_name: s.param_value(config) for s in SETTINGS if s.param is not None}


def training_settings(config: TrainConfig) -> dict[str, Any]:
    """The settings the key is made of (JSON-able)."""
    return {s.field: s.key_value(config) for s in SETTINGS if s.key is not None}


def training_key(config: TrainConfig) -> str:
    """The digest of :func:`training_settings` (64 hex digits)."""
    text = json.dumps(training_settings(config), sort_keys=True, default=str)
    return _digest_bytes([text.encode()])


def resume_differences(
    config: TrainConfig, params: Mapping[str, str], tags: Mapping[str, str]
) -> list[str]:
    """The settings in which resuming a run (its ``params`` and ``tags``) with ``config``
    differs from how the run was trained, one line each; empty when it may resume.

    Logged params are compared where the run has them; a setting the run has no param
    for (left at its default, or logged before that param existed) is named when the
    run's training key, computed with its own epochs, says something differs."""
    differ, unlogged = [], []
    for s in SETTINGS:
        if not s.resume or not s.applies(config):  # the setting it depends on is compared
            continue
        value, have = s.param_value(config), params.get(s.param_name)
        shown = None if value is None else str(value)[:PARAM_LIMIT]
        if have is None:
            if shown is not None:
                unlogged.append(f"{s.param_name}={shown} (run has none)")
        elif shown != have:
            differ.append(f"{s.param_name}={shown} (run has {have})")
    key, epochs = tags.get(TRAINING_KEY_TAG), params.get("epochs", "")
    # epochs is the one key setting a resume may change: the run's own count is keyed
    if (
        key is not None
        and epochs.isdigit()
        and training_key(replace(config, epochs=int(epochs))) != key
    ):
        differ += unlogged
        if not differ:
            differ.append("the content of the suite file or of the starting checkpoint")
    return differ
