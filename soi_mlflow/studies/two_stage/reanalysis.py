"""Redo a two-stage study's analysis from its children (``analysis.py``): the accuracy
table, headline metrics and figure, the paired intervals and the SOI migration, with the
(selection, seed) pairs the study dropped as not identified (its logged table). Studies
of one seed and one selection, from before ``--seeds`` and ``--stage2``, read the same way."""

from __future__ import annotations

from typing import Any

import pandas as pd

from soi_mlflow.analysis.runs import cache_for
from soi_mlflow.analysis.soi import get_taxonomy
from soi_mlflow.errors import SoiInputError
from soi_mlflow.studies.readback import Reanalysis, ReanalysisOptions, children
from soi_mlflow.studies.two_stage.analysis import NOT_IDENTIFIED_TABLE, log_two_stage
from soi_mlflow.studies.two_stage.selections import dropped_frame
from soi_mlflow.studies.two_stage.terminal import accuracy_view
from soi_mlflow.tracking import tags
from soi_mlflow.tracking.run import RunHandle


def _row(child: Any, members: list[str]) -> dict[str, Any] | None:
    """One child as a row of the study's runs table (None: not a two-stage child)."""
    own, params = child.data.tags, child.data.params
    seed = int(own.get(tags.SEED, params.get("seed", 0)))
    row: dict[str, Any] = {"seed": seed, "selection": "", "member": "", "size": float("nan")}
    row["run_id"] = child.info.run_id
    trained = [m for m in own.get(tags.MEMBERS, "").split(",") if m]
    if own.get(tags.STAGE) == "1":
        alone = len(members) > 1 and len(trained) == 1
        return {
            **row,
            "role": "single" if alone else "stage 1",
            "member": trained[0] if alone else "",
        }
    if own.get(tags.STAGE) != "2":
        return None
    size = float(params.get("train_examples", "nan"))
    control = own.get(tags.CONTROL) == "true"
    role = "control" if control else "stage 2"
    return {**row, "role": role, "selection": own.get(tags.SELECTION, ""), "size": size}


def runs_table(handle: RunHandle, members: list[str]) -> pd.DataFrame:
    """The study's runs (seed, role, selection, member, run_id, size) from its finished
    children; a seed's stage 1 that is no child (an existing run) from stage 2's
    ``soi.stage1_run_id``."""
    found = list(children(handle))
    rows = [r for r in (_row(c, members) for c in found) if r is not None]
    have = {r["seed"] for r in rows if r["role"] == "stage 1"}
    for c in found:
        own = c.data.tags
        seed = int(own.get(tags.SEED, c.data.params.get("seed", 0)))
        if own.get(tags.STAGE) == "2" and seed not in have and own.get(tags.STAGE1_RUN_ID):
            rows.append(
                {"seed": seed, "role": "stage 1", "selection": "", "member": ""}
                | {"run_id": own[tags.STAGE1_RUN_ID], "size": float("nan")}
            )
            have.add(seed)
    cols = ["seed", "role", "selection", "member", "run_id", "size"]
    out = pd.DataFrame(rows, columns=cols)
    out["size"] = out["size"].astype("Int64")
    return out


def _dropped(handle: RunHandle) -> pd.DataFrame:
    """The (selection, seed) pairs the study dropped because the selection was empty, as
    it logged them (none in a study from before that table)."""
    path = f"tables/{NOT_IDENTIFIED_TABLE}.parquet"
    logged = {a.path for a in handle.client.list_artifacts(handle.run_id, "tables")}
    if path not in logged:
        return dropped_frame()
    return pd.read_parquet(cache_for(handle.tracking_uri).file(handle.run_id, path))


def reanalyze(handle: RunHandle, run: Any, options: ReanalysisOptions | None = None) -> Reanalysis:
    """Find every seed's stage 1, stage 2 per selection and the controls among the
    children and log the study's analysis again."""
    params = run.data.params
    members = [m for m in params.get("members", "").split(",") if m]
    ood = [m for m in params.get("ood", "").split(",") if m]
    runs = runs_table(handle, members)
    missing = [r for r in ("stage 1", "stage 2", "control") if not (runs["role"] == r).any()]
    if missing:
        raise SoiInputError(
            f"run {handle.run_id}: the two_stage study has no finished {' or '.join(missing)} "
            "run to analyse"
        )
    seeds = runs["seed"].nunique()
    title = (
        f"Accuracy after stage 1, stage 2 ({params.get('selection', '?')}, "
        f"{params.get('stage2_epochs', '?')} epochs) and random controls of the same sizes, "
        f"mean over {seeds} seed(s)"
    )
    taxonomy: str | None = params.get("taxonomy", "default")
    try:
        get_taxonomy(taxonomy)
    except SoiInputError:  # registered in the study's process only: no migration here
        taxonomy = None
    logged = log_two_stage(handle, runs, members, ood, title, taxonomy, dropped=_dropped(handle))
    table, legend = accuracy_view(logged.table.T, runs, digits=4)  # as print_study_table
    shown = {"\n".join(["accuracy, mean over seeds (test = ID, ood = OOD)", *legend]): table}
    for name, frame in logged.terminal.items():
        cut = name if len(name) <= 48 else name[:47] + "~"
        shown[f"{cut}: paired by seed, mean, 95 % Student t interval"] = frame
    return Reanalysis("two_stage", shown)
