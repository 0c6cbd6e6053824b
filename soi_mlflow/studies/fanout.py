"""A study's children, handed to the executor: reused when MLflow already holds them
FINISHED, trained (in this process or as Ray tasks) otherwise.

Every study declares its children as :class:`Child` (a TrainConfig nested under the
study's parent, the ``[k/n]`` text, and what the worker computes after training) and hands
each wave to :meth:`Fanout.run`; a wave that needs another's result (sequential transfer's
pairs, stage 2, an approximation's next size) is the next call. The parent run lives on
this process, the driver.

Resuming (``--resume PARENT_RUN_ID``) reopens that parent and reuses its FINISHED children
whose ``soi.training_key`` (``training/key.py``) equals the key of a child asked for; the
rest are trained under the same parent. ``transfer --reuse`` widens the search to the
whole experiment. A failed child fails the study after every other child of its wave
ran; Ctrl-C or SIGTERM cancels the wave and ends the unfinished children KILLED.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from soi_mlflow.common.console import step
from soi_mlflow.common.executor import ExecutorSettings, check_executor, make_executor
from soi_mlflow.errors import SoiInputError
from soi_mlflow.tracking import tags
from soi_mlflow.tracking.health import sigterm_raises
from soi_mlflow.tracking.reach import check_store_reaches_workers
from soi_mlflow.tracking.run import RunHandle
from soi_mlflow.tracking.run_end import end_run
from soi_mlflow.tracking.search import search_all
from soi_mlflow.training import TrainConfig, train
from soi_mlflow.training.key import training_key


@dataclass(kw_only=True)
class StudySettings(ExecutorSettings):
    """Options every study has: where its children train, and which study to resume."""

    resume: str | None = None
    """a study's parent run id: reopen it, reuse its FINISHED children, train the rest"""


def executor_settings(settings: ExecutorSettings) -> dict[str, Any]:
    """The executor options of ``settings``, to hand to a study run inside another."""
    return {
        "executor": settings.executor,
        "ray_address": settings.ray_address,
        "gpus_per_run": settings.gpus_per_run,
        "cpus_per_run": settings.cpus_per_run,
    }


def check_study(base: TrainConfig, settings: StudySettings) -> None:
    """Refuse, before anything starts, executor settings that cannot work: a bad option,
    Ray missing, a remote Ray cluster with a store only this machine reaches, a study run
    inside a training resume."""
    check_executor(settings)
    if base.resume is not None:
        raise SoiInputError(
            "resume: a study resumes from its parent run id (--resume PARENT_RUN_ID in the "
            "study's options), not from one training run's"
        )
    check_store_reaches_workers(settings, base.tracking_uri)


@dataclass(frozen=True)
class Child:
    """One child training: its config, its ``[k/n]`` text, and optionally what the worker
    computes after training (``after(config, result)``: small, picklable) and how the
    same value is read back from a reused run (``reread(run_id, tracking_uri)``; None or
    an error: the run is trained again)."""

    config: TrainConfig
    what: str
    after: Callable[[TrainConfig, Any], Any] | None = None
    reread: Callable[[str, str], Any] | None = None
    checkpoint: bool = False  # reusable only with its checkpoint/ artifact
    match_tags: dict[str, str | None] = field(default_factory=dict)  # must equal on reuse


@dataclass(frozen=True)
class Done:
    """A child's run, what ``after`` gave, whether it was reused, and its training time."""

    run_id: str
    value: Any = None
    reused: bool = False
    seconds: float = 0.0


def train_child(child: Child) -> Done:
    """In the worker (this process or a Ray task): train the child, then ``after``.
    SIGTERM (a cancelled Ray task's worker gets one) ends the child's run KILLED."""
    start = time.perf_counter()
    with sigterm_raises():
        result = train(child.config)
    seconds = time.perf_counter() - start
    value = child.after(child.config, result) if child.after is not None else None
    return Done(result.run_id, value, False, seconds)


def _describe(child: Child) -> str:
    return child.what


def _absolute_sqlite(uri: str) -> str:
    """A relative SQLite URI made absolute, so a worker in another folder finds it."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str(Path(uri[len(prefix) :]).resolve())
    return uri


class Fanout:
    """The children of one study parent, trained through one executor."""

    def __init__(
        self, parent: RunHandle, settings: StudySettings, reuse_experiment: bool = False
    ) -> None:
        self.parent = parent
        self.settings = settings
        self.reuse_experiment = reuse_experiment
        self.executor = make_executor(settings)
        self.trained = self.reused = 0
        self.done = 0  # children finished or reused, for the [k/n] lines
        self.total = 0  # the study's children, when known (else each wave's)
        self.used: set[str] = set()

    def __enter__(self) -> Fanout:
        if self.settings.resume:
            end_unfinished(self.parent, KilledBefore())
        return self

    def __exit__(self, *exc: object) -> None:
        self.executor.close()

    def result_fields(self) -> dict[str, Any]:
        """The :class:`~soi_mlflow.studies.result.StudyResult` fields of this study: its
        parent run, the command that opens it in the MLflow UI, the children trained and
        reused (to pass as ``Result(..., **fan.result_fields())``)."""
        return {
            "parent_run_id": self.parent.run_id,
            "ui_command": self.parent.ui_command(),
            "trained": self.trained,
            "reused": self.reused,
        }

    def nested(self, config: TrainConfig, tags: dict[str, str]) -> TrainConfig:
        """``config`` as a child of this parent: nested, tagged, on the parent's store (a
        relative SQLite path made absolute), DDP spawned inside a Ray worker."""
        uri = self.parent.tracking_uri
        out = replace(
            config,
            parent_run_id=self.parent.run_id,
            tracking_uri=_absolute_sqlite(uri) if self.executor.kind == "ray" else uri,
            tags={**config.tags, **tags},
        )
        if self.executor.kind == "ray" and out.devices > 1 and out.strategy in ("auto", "ddp"):
            out = replace(out, strategy="ddp_spawn")  # ddp relaunches Ray's worker script
        return out

    def run(self, children: list[Child]) -> list[Done]:
        """Every child of one wave: reused where MLflow holds it FINISHED, else trained;
        in the children's order."""
        total = self.total or self.done + len(children)
        out: list[Done | None] = [None] * len(children)
        todo: list[int] = []
        for i, child in enumerate(children):
            found = self.find(child)
            if found is None:
                todo.append(i)
                continue
            out[i] = found
            self.reused += 1
            self.done += 1
            step(self.done, total, f"{child.what}: reusing run {found.run_id}")
        try:
            trained = self.executor.map(
                train_child, [children[i] for i in todo], _describe, (self.done, total)
            )
        except BaseException as exc:
            if not isinstance(exc, Exception):  # Ctrl-C, SIGTERM: cancelled children
                end_unfinished(self.parent, exc)
            raise
        for i, done in zip(todo, trained, strict=True):
            out[i] = done
        self.trained += len(todo)
        self.done += len(todo)
        return [d for d in out if d is not None]

    def find(self, child: Child) -> Done | None:
        """A FINISHED run with ``child``'s training key: among the resumed parent's
        children (``--resume``), or the experiment's runs (``transfer --reuse``)."""
        if not (self.settings.resume or self.reuse_experiment):
            return None
        client = self.parent.client
        wanted = {tags.TRAINING_KEY: training_key(child.config)}
        if not self.reuse_experiment:
            wanted[tags.PARENT_RUN_ID] = self.settings.resume or ""
        finished = "attributes.status = 'FINISHED'"
        for run in search_all(client, [self.parent.experiment_id], finished, wanted):
            run_id = run.info.run_id
            if run_id in self.used or run.data.tags.get(tags.STUDY) in ("transfer",):
                continue
            if any(run.data.tags.get(k) != v for k, v in child.match_tags.items()):
                continue
            if child.checkpoint and not client.list_artifacts(run_id, "checkpoint"):
                continue
            value = None
            if child.reread is not None:
                try:
                    value = child.reread(run_id, self.parent.tracking_uri)
                except Exception:  # noqa: BLE001 - not reusable: trained again
                    continue
                if value is None:
                    continue
            self.used.add(run_id)
            seconds = ((run.info.end_time or 0) - (run.info.start_time or 0)) / 1000
            return Done(run_id, value, True, max(seconds, 0.0))
        return None


class KilledBefore(KeyboardInterrupt):
    """The reason of a child a dead driver left RUNNING, ended KILLED when its study resumes."""

    def __str__(self) -> str:
        return "left running by a study driver that stopped; ended when the study resumed"


def end_unfinished(parent: RunHandle, exc: BaseException) -> list[str]:
    """End every child of ``parent`` still RUNNING (a cancelled Ray task cannot end its
    own run) with the status ``exc`` calls for (KILLED); returns their run ids."""
    ended = []
    running, children = "attributes.status = 'RUNNING'", {tags.PARENT_RUN_ID: parent.run_id}
    for run in search_all(parent.client, [parent.experiment_id], running, children):
        end_run(parent.client, parent.tracking_uri, run.info.run_id, exc)
        ended.append(run.info.run_id)
    return ended
