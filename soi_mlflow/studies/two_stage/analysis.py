"""The analysis of a two-stage study: each run's accuracy (ID and OOD) per member, the
headline metrics (stage 2 against its random control) and the figure, logged to the
parent by the study (``study.py``) and by its re-analysis (``reanalysis.py``)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from soi_mlflow.analysis import identified
from soi_mlflow.tracking.artifacts import log_figures, log_table


def accuracy_rows(client, runs: dict[str, str], members: list[str], ood: list[str]) -> pd.DataFrame:
    """Per member and run: final test (ID) accuracy, and OOD accuracy per OOD member."""
    rows = []
    for label, run_id in runs.items():
        metrics = client.get_run(run_id).data.metrics
        for m in members:
            rows.append(
                {"run": label, "member": m, "split": "test", "acc": metrics.get(f"test/{m}/acc")}
            )
        for o in ood:
            rows.append(
                {"run": label, "member": o, "split": "ood", "acc": metrics.get(f"ood/{o}/acc")}
            )
    return pd.DataFrame(rows)


def two_stage_headline(acc: pd.DataFrame) -> dict[str, float]:
    """Mean accuracy over members per run and split (``summary/stage_2/test_acc``, ...)
    and stage 2's gain over its random control (``summary/test_acc_stage2_minus_control``)."""
    means = acc.dropna(subset=["acc"]).groupby(["run", "split"])["acc"].mean()
    out = {
        f"summary/{run.replace(' ', '_')}/{split}_acc": float(v)
        for (run, split), v in means.items()
    }
    for split in ("test", "ood"):
        if ("stage 2", split) in means and ("control", split) in means:
            gain = means[("stage 2", split)] - means[("control", split)]
            out[f"summary/{split}_acc_stage2_minus_control"] = float(gain)
    return out


def log_two_stage(
    parent: Any, runs: dict[str, str], members: list[str], ood: list[str], title: str
) -> pd.DataFrame:
    """The accuracy table, headline metrics and figure of ``runs`` (stage 1, stage 2,
    control), logged to ``parent``; a run without a member's metric gives a "not
    identified" row (``problem``) instead of an error. Returns the wide table."""
    # deferred: matplotlib
    from soi_mlflow.analysis import figures  # matplotlib, when a figure is drawn

    acc = accuracy_rows(parent.client, runs, members, ood)
    acc["acc"] = pd.to_numeric(acc["acc"])
    acc["problem"] = [
        None
        if pd.notna(a)
        else identified.not_identified(f"run {runs[r]} has no metric {s}/{m}/acc")
        for r, m, s, a in zip(acc["run"], acc["member"], acc["split"], acc["acc"], strict=True)
    ]
    problems = identified.table_problems({"two_stage_accuracy": acc}, keys=3)
    log_table(parent.client, parent.run_id, acc, "two_stage_accuracy")
    parent.log_metrics(two_stage_headline(acc), step=0)
    wide = acc.pivot_table(index=["member", "split"], columns="run", values="acc")
    wide = wide.reindex(columns=list(runs))  # a run with no metric at all: NaN, not KeyError
    wide.index = [f"{m} ({s})" for m, s in wide.index]
    log_figures(
        parent.client,
        parent.run_id,
        {
            "two_stage_accuracy": figures.side_by_side(
                wide, title + identified.title_note(problems), "accuracy"
            )
        },
    )
    identified.report(parent.client, parent.run_id, problems)
    return wide
