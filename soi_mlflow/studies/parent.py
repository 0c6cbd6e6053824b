"""The parent run of a study: opened first, ended FAILED or KILLED, with the reason in the
``soi.end_reason`` tag, if anything inside fails or the process is stopped."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from soi_mlflow.common import process_state
from soi_mlflow.errors import SoiInputError
from soi_mlflow.tracking import tags
from soi_mlflow.tracking.health import check_tracking, get_run, sigterm_raises
from soi_mlflow.tracking.links import md_escape, set_description_section
from soi_mlflow.tracking.run import RunHandle, soi_tags
from soi_mlflow.tracking.run_open import open_run
from soi_mlflow.tracking.store import client_for, resolve_tracking_uri
from soi_mlflow.training import TrainConfig, run_params

STUDY_NOTES = {
    "compare": (
        "**Single vs multi comparison**: each member trained alone and all together; the "
        "child runs are listed under this run in the runs table, each with its own "
        "interactive data map (`html/datamap_train.html`)."
    ),
    "two_stage": (
        "**Two-stage fine-tuning**: stage 1 trains normally, stage 2 continues from its "
        "checkpoint on the examples selected by their SOI, next to a random control of the "
        "same size, per seed and selection. Look at `tables/two_stage_intervals.json` and "
        "`figures/two_stage_intervals.png` (paired differences with 95 % intervals), "
        "`tables/two_stage_accuracy.json` and the SOI migration "
        "(`tables/two_stage_migration.json`, `figures/two_stage_migration_*.png`); a "
        "selection empty in a seed is listed in `tables/two_stage_not_identified.json`."
    ),
    "transfer": (
        "**Transfer matrix**: the effect of training with each source on each target. Look "
        "at `tables/transfer_mean.json` (rows: sources, columns: targets), "
        "`figures/transfer_matrix.png` and the latent traits in `figures/transfer_biplot.png`."
    ),
    "learning_curve": (
        "**Multi-task learning curves** of one target, alone and with auxiliary data. Look "
        "at `tables/learning_curve_worth.json` (what the auxiliary data is worth in target "
        "examples), `tables/learning_curve_fits.json` and `figures/learning_curve.png`."
    ),
    "recommend": (
        "**Recommendation check** (`soi-mlflow recommend --verify`): the target alone, with "
        "the top-K and with the bottom-K recommended auxiliary members. Look at "
        "`tables/recommend_table.json` (the ranking), `tables/recommend_verdict.json` and "
        "the tag `soi.recommend_verdict` (did the predicted order hold)."
    ),
}


def study_note(study: str, base: TrainConfig) -> str:
    """The opening of a study parent's description: what the study is, on which members."""
    members = ", ".join(md_escape(m) for m in base.mixture.members)
    intro = STUDY_NOTES.get(study, f"**Study** {md_escape(study)}.")
    return f"{intro}\n\nMembers: {members} ({md_escape(base.mixture.axis)} axis)."


def reopen_parent(
    base: TrainConfig,
    study: str,
    run_id: str,
    params: Mapping[str, Any],
    absent: Mapping[str, str] | None = None,
):
    """The parent run ``run_id`` of an earlier ``study``, RUNNING again: refused, before
    it is reopened, when it is no parent of this kind of study or was started with other
    study params (which children it needs). ``absent``: the value a param stands for in a
    parent logged before it existed (else such a param is not compared)."""
    uri = resolve_tracking_uri(base.tracking_uri)
    check_tracking(uri)
    run = get_run(client_for(uri), run_id, uri, "resume (the study's parent run id)")
    kind = run.data.tags.get(tags.STUDY)
    if kind != study:
        raise SoiInputError(
            f"resume: run {run_id} is not the parent run of a {study} study "
            f"(its {tags.STUDY} tag is {kind!r})"
        )
    logged = {**(absent or {}), **run.data.params}
    differ = [
        f"{k}={logged[k]} (now {v})"
        for k, v in params.items()
        if v is not None and k in logged and logged[k] != str(v)[:6000]
    ]
    if differ:
        raise SoiInputError(
            f"resume: run {run_id} was started with other study settings: {', '.join(differ)}; "
            "resume with the same settings, or start a new study"
        )
    return open_run(uri, run_id=run_id, resume=True, owned=True, what="resume run id")


@contextmanager
def study_parent(
    base: TrainConfig,
    study: str,
    name: str,
    params: Mapping[str, Any],
    resume: str | None = None,
    absent: Mapping[str, str] | None = None,
    **tags: Any,
) -> Iterator[RunHandle]:
    """Open the parent run of ``study`` (or attach to ``mlflow run``'s) with the
    ``soi.study``/``soi.axis`` tags, ``tags`` and ``base``'s params plus ``params``;
    end it FINISHED, or FAILED (an exception, a child run's included) or KILLED (Ctrl-C,
    SIGTERM) with the reason in ``soi.end_reason``, through its spool as every training
    run ends (in an outage the end waits for ``soi-mlflow sync``). With
    ``base.parent_run_id`` (a study run inside another study) it is a child run of that
    parent. Every study's wall time is logged as the metric ``compute/wall_seconds``, so
    studies compare by cost in the MLflow UI (studies that count example-passes log
    ``compute/example_passes``). With ``resume``, that earlier parent run is reopened
    (:func:`reopen_parent`, which reads a param missing from it as ``absent`` gives)
    instead of a new one created."""
    if resume:
        parent = reopen_parent(base, study, resume, params, absent)
    else:
        parent = open_run(
            base.tracking_uri,
            experiment=base.experiment,
            run_name=base.run_name or name,
            tags=soi_tags(study=study, axis=base.mixture.axis, **tags),
            parent_run_id=base.parent_run_id,
        )
    start = time.perf_counter()
    try:
        # SIGTERM between child runs ends it KILLED too; what the study's libraries change
        # in the process (cleanlab's import adds an ignore-all warning filter, sklearn's
        # sets KMP_* variables) is put back afterwards
        with sigterm_raises(), process_state.kept():
            parent.log_params(run_params(base) | dict(params))
            set_description_section(parent.client, parent.run_id, None, study_note(study, base))
            yield parent
    except BaseException as exc:
        parent.end(exc)
        raise
    wall = {"compute/wall_seconds": time.perf_counter() - start}
    parent.spool.put_metrics(wall, step=0, heartbeat=False)
    parent.end()
