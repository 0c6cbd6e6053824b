"""The noise benchmark's cross-validation: per seed, k child trainings each without one
fold, their held-out probabilities, and from them ``oos_confidence`` and confident
learning's ``confident_learning`` / ``cl_issue`` per task.

A fold's held-out probabilities are computed where it trained (in this process or a Ray
worker: the trained model stays there) and logged to its run as
``tables/heldout_probabilities.parquet``, so a resumed study reads them back instead of
training the fold again."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from soi_mlflow.analysis.identified import ESTIMATION_ERRORS, not_identified
from soi_mlflow.analysis.noise import confident_learning
from soi_mlflow.analysis.runs import cache_for
from soi_mlflow.studies.fanout import Child, Fanout
from soi_mlflow.studies.noise_benchmark.heldout import heldout_probabilities
from soi_mlflow.tracking import tags
from soi_mlflow.tracking.artifacts import log_table
from soi_mlflow.training import TrainConfig

HELDOUT_TABLE = "heldout_probabilities"


def heldout_after(ids: tuple[int, ...], config: TrainConfig, result: Any) -> dict[int, Any]:
    """In the worker, after a fold trained: the probabilities of its held-out ``ids``,
    logged to the fold's run and returned."""
    from mlflow import MlflowClient

    probs = heldout_probabilities(config, result.module, np.asarray(ids))
    frame = pd.DataFrame(
        {"example_id": list(probs), "probs": [list(map(float, p)) for p in probs.values()]}
    )
    log_table(MlflowClient(result.tracking_uri), result.run_id, frame, HELDOUT_TABLE)
    return probs


def heldout_reread(run_id: str, tracking_uri: str) -> dict[int, Any]:
    """The held-out probabilities a fold's run logged (an error when it has none)."""
    path = cache_for(tracking_uri).file(run_id, f"tables/{HELDOUT_TABLE}.parquet")
    frame = pd.read_parquet(path)
    return {
        int(i): np.asarray(p, dtype=float)
        for i, p in zip(frame["example_id"], frame["probs"], strict=True)
    }


def fold_of(ids: np.ndarray, seed: int, folds: int) -> np.ndarray:
    """Each example's fold: a seeded permutation dealt round-robin."""
    order = np.random.default_rng([seed, 0xC1]).permutation(len(ids))
    out = np.empty(len(ids), dtype=int)
    out[order] = np.arange(len(ids)) % folds
    return out


def cross_validated(
    fan: Fanout, configs: list[TrainConfig], every: list[pd.DataFrame], folds: int
) -> list[pd.DataFrame]:
    """Each seed's scores (``every``) joined with its out-of-sample columns, from
    ``folds`` trainings per seed, all handed to ``fan`` as one wave."""
    children, plan = [], []
    for config, scores in zip(configs, every, strict=True):
        ids = scores["example_id"].to_numpy()
        fold = fold_of(ids, config.seed, folds)
        for f in range(folds):
            fold_config = replace(
                config,
                mixture=replace(config.mixture, train_ids=frozenset(ids[fold != f].tolist())),
                run_name=f"cv{f}-seed{config.seed}",
                analyze=False,  # a fold's own data map is of no use; its held-out scores are
            )
            own = {tags.ROLE: "cross_validation", tags.FOLD: str(f)}
            heldout = tuple(int(i) for i in ids[fold == f])
            children.append(
                Child(
                    fan.nested(fold_config, own),
                    f"cross-validation fold {f + 1}/{folds}, seed {config.seed}",
                    after=partial(heldout_after, heldout),
                    reread=heldout_reread,
                    match_tags={tags.FOLD: str(f)},
                )
            )
            plan.append(config.seed)
    probs: dict[int, dict[int, Any]] = {c.seed: {} for c in configs}
    for seed, done in zip(plan, fan.run(children), strict=True):
        probs[seed] |= done.value
    return [
        scores.join(out_of_sample(config, scores, probs[config.seed]), on="example_id")
        for config, scores in zip(configs, every, strict=True)
    ]


def out_of_sample(config: TrainConfig, scores: pd.DataFrame, probs: dict[int, Any]) -> pd.DataFrame:
    """``oos_confidence`` and ``confident_learning`` from the held-out probabilities;
    confident learning runs per task."""
    ids = scores["example_id"].to_numpy()
    out = pd.DataFrame(index=pd.Index(ids, name="example_id"))
    out["oos_confidence"] = np.nan
    out["confident_learning"] = np.nan
    out["cl_issue"] = False
    suite = config.mixture.suite
    task_of = {m: suite.member(m).task for m in config.mixture.members}
    tasks = scores["member"].map(task_of).to_numpy()
    for task in np.unique(tasks):
        rows = scores[tasks == task]
        labels = rows["label"].to_numpy(dtype=int)
        matrix = np.stack([probs[int(i)] for i in rows["example_id"]])
        try:
            issues, suspicion = confident_learning(labels, matrix)
        except ESTIMATION_ERRORS as exc:  # cleanlab refuses these probabilities
            print(f"confident learning on {task}: {not_identified(exc)}", flush=True)
            issues, suspicion = np.zeros(len(rows), bool), np.full(len(rows), np.nan)
        out.loc[rows["example_id"], "confident_learning"] = suspicion
        out.loc[rows["example_id"], "cl_issue"] = issues
        out.loc[rows["example_id"], "oos_confidence"] = 1.0 - matrix[np.arange(len(rows)), labels]
    return out
