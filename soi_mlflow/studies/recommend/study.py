"""Recommend auxiliary members for a target from transfer studies already in MLflow
(``analysis/transfer_predict.py``) and, with ``verify`` K, check the recommendation: the
target trained alone, with the top-K and with the bottom-K candidates (jointly, on the
set-up of the target's own run in the first study, on seeds no study trained), per seed,
as child runs of a parent tagged ``recommend``; the predicted order held when the top-K
gain beats the bottom-K gain, paired by seed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import pandas as pd

from soi_mlflow.analysis.intervals import t_interval
from soi_mlflow.analysis.transfer_predict import evaluate, recommend
from soi_mlflow.common.seeds import check_seed
from soi_mlflow.errors import SoiInputError
from soi_mlflow.studies.fanout import Child, Fanout, StudySettings, check_study
from soi_mlflow.studies.parent import study_parent
from soi_mlflow.studies.recommend.evidence import Evidence, gather, training_config
from soi_mlflow.studies.result import StudyResult
from soi_mlflow.tracking import tags
from soi_mlflow.tracking.artifacts import log_table
from soi_mlflow.tracking.run import RunHandle
from soi_mlflow.tracking.store import TRACKING_URI_HELP

TABLE = "recommend_table"  # the ranked candidates
ERRORS = "recommend_errors"  # the predictor against the baselines
VERIFY = "recommend_verify"  # per seed: the target's score alone, with top-K, bottom-K
VERDICT = "recommend_verdict"  # the paired difference and whether the order held
ARMS = ("alone", "top", "bottom")


@dataclass
class RecommendSettings(StudySettings):
    """What to recommend for, from which studies, and whether to verify it."""

    target: str = field(metadata={"help": "the member that auxiliary data should help"})
    parents: tuple[str, ...] = field(
        metadata={"help": "transfer studies' parent run ids (comma-separated; also --from)"}
    )
    candidates: tuple[str, ...] = field(
        default=(), metadata={"help": "candidate auxiliary members; empty: every member"}
    )
    verify: int = field(
        default=0,
        metadata={"help": "K: train the target with the top-K and the bottom-K (0: do not)"},
    )
    seeds: int = field(default=1, metadata={"help": "seeds of each --verify training"})
    level: float = field(default=0.95, metadata={"help": "confidence level of the intervals"})
    tracking_uri: str | None = field(default=None, metadata={"help": TRACKING_URI_HELP})


@dataclass(kw_only=True)
class RecommendResult(StudyResult):
    """The ranked candidates, the predictor's errors, and with ``verify`` the per-seed
    scores and the verdict (no parent run without ``verify``: empty ids)."""

    table: pd.DataFrame
    errors: pd.DataFrame | None
    notes: list[str]
    scores: pd.DataFrame | None = None
    verdict: pd.DataFrame | None = None


def advise(settings: RecommendSettings) -> tuple[Evidence, pd.DataFrame, pd.DataFrame | None]:
    """The evidence, the ranked table and the errors table (None without profiles)."""
    evidence = gather(settings.parents, settings.tracking_uri)
    candidates = list(settings.candidates) or None
    table = recommend(
        settings.target, evidence.deltas, evidence.factors, candidates, level=settings.level
    )
    errors = None if evidence.factors is None else evaluate(evidence.deltas, evidence.factors)
    return evidence, table, errors


def run(
    settings: RecommendSettings, show: Callable[[RecommendResult], None] | None = None
) -> RecommendResult:
    """Recommend; with ``settings.verify`` K, train and check the order. ``show`` is
    called with the recommendation before anything trains (the command prints it)."""
    if settings.verify < 0:
        raise SoiInputError(f"--verify: expected K >= 0, got {settings.verify}")
    if settings.seeds < 1:
        raise SoiInputError(f"--seeds: expected a positive integer, got {settings.seeds}")
    evidence, table, errors = advise(settings)
    notes = list(evidence.notes)
    if evidence.factors is None:
        notes.append("no profiles in any study: unmeasured cells are predicted by the row mean")
    advice = RecommendResult(
        parent_run_id="", ui_command="", table=table, errors=errors, notes=notes
    )
    k = settings.verify
    if 2 * k > len(table):
        raise SoiInputError(
            f"--verify: {k} top and {k} bottom candidates need {2 * k}; there are {len(table)}"
        )
    if k and evidence.modes - {"joint"}:
        notes.append("the studies include sequential ones; --verify trains jointly")
    if show is not None:
        show(advice)
    if not k:
        return advice
    if settings.target not in evidence.alone_runs:
        raise SoiInputError(
            f"--target: no study holds a run of {settings.target!r} alone to repeat its set-up"
        )
    ranked = table.sort_values("rank")
    top, bottom = tuple(ranked["candidate"][:k]), tuple(ranked["candidate"][-k:])
    base = training_config(evidence.alone_runs[settings.target], settings.tracking_uri)
    # seeds no study trained: the target's own seed again would repeat its measured runs
    base = replace(
        base, tracking_uri=settings.tracking_uri or base.tracking_uri, seed=evidence.next_seed
    )
    check_seed(base.seed, "seed", settings.seeds)
    check_study(base, settings)
    return _verify(base, settings, table, errors, notes, {"top": top, "bottom": bottom})


def _verify(base, settings, table, errors, notes, arms) -> RecommendResult:
    target = settings.target
    spec = replace(base.mixture, members=(target,), ood=())
    seeds = [base.seed + s for s in range(settings.seeds)]
    with (
        study_parent(
            replace(base, mixture=spec, run_name=None),
            "recommend",
            f"recommend-{target}",
            {"target": target, "verify": settings.verify, "seeds": settings.seeds},
            resume=settings.resume,
            target=target,
            seeds=settings.seeds,
            recommend_from=",".join(settings.parents),
        ) as parent,
        Fanout(parent, settings) as fan,
    ):
        log_table(parent.client, parent.run_id, table, TABLE)
        if errors is not None:
            log_table(parent.client, parent.run_id, errors, ERRORS)
        plan = [(seed, arm) for seed in seeds for arm in ARMS]
        fan.total = len(plan)
        children = [_child(base, fan, target, arms.get(arm, ()), arm, seed) for seed, arm in plan]
        done = fan.run(children)
        rows = [
            {"seed": seed, "arm": arm, "members": "+".join((target, *arms.get(arm, ()))),
             "score": _score(parent, d.run_id, target), "run_id": d.run_id}
            for (seed, arm), d in zip(plan, done, strict=True)
        ]  # fmt: skip
        scores = pd.DataFrame(rows)
        verdict = log_verdict(parent, scores, settings.level)
    return RecommendResult(
        table=table,
        errors=errors,
        notes=notes,
        scores=scores,
        verdict=verdict,
        **fan.result_fields(),
    )


def _child(base, fan: Fanout, target: str, aux: tuple[str, ...], arm: str, seed: int) -> Child:
    config = replace(base, mixture=replace(base.mixture, members=(target, *aux), ood=()), seed=seed)
    config = replace(config, run_name=None, parent_run_id=None, init_from=None)
    label = f"{arm}: {'+'.join((target, *aux))} seed {seed}"
    return Child(fan.nested(config, {tags.ARM: arm}), label, match_tags={tags.ARM: arm})


def _score(parent: RunHandle, run_id: str, target: str) -> float:
    value = parent.client.get_run(run_id).data.metrics.get(f"test/{target}/acc")
    return float("nan") if value is None else float(value)


def order_verdict(scores: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """From per-seed ``seed, arm, score``: the gains of top-K and bottom-K over the target
    alone and their difference (top minus bottom, paired by seed) with a t interval, and
    ``verdict``: "held" (interval above 0), "held in the mean (interval includes 0)" or
    "one seed: no interval", or "did not hold" (mean at or below 0)."""
    wide = scores.pivot_table(index="seed", columns="arm", values="score", aggfunc="mean")
    missing = [a for a in ARMS if a not in wide.columns]
    if missing:
        raise SoiInputError(f"scores: no {missing} runs to compare")
    rows = []
    for name, values in (
        ("top-K gain", wide["top"] - wide["alone"]),
        ("bottom-K gain", wide["bottom"] - wide["alone"]),
        ("top-K minus bottom-K", wide["top"] - wide["bottom"]),
    ):
        mean, low, high = t_interval(values.to_numpy(float), level)
        rows.append({"quantity": name, "mean": mean, "low": low, "high": high,
                     "n_seeds": int(values.notna().sum())})  # fmt: skip
    out = pd.DataFrame(rows)
    diff = out.iloc[2]
    if not diff["mean"] > 0:
        verdict = "did not hold"
    elif diff["low"] > 0:
        verdict = "held"
    elif diff["n_seeds"] < 2:
        verdict = "held in the mean (one seed: no interval)"
    else:
        verdict = "held in the mean (interval includes 0)"
    out["verdict"] = verdict
    return out


def log_verdict(parent: RunHandle, scores: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """The per-seed scores and the verdict, logged to ``parent`` (tag
    ``soi.recommend_verdict``)."""
    verdict = order_verdict(scores, level)
    log_table(parent.client, parent.run_id, scores, VERIFY)
    log_table(parent.client, parent.run_id, verdict, VERDICT)
    diff = verdict.iloc[2]
    line = (
        f"{diff['verdict']}: top-K minus bottom-K {diff['mean']:+.3f} "
        f"[{diff['low']:+.3f}, {diff['high']:+.3f}] over {diff['n_seeds']} seed(s)"
    )
    parent.client.set_tag(parent.run_id, tags.RECOMMEND_VERDICT, line)
    return verdict
