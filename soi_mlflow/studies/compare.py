"""The single-vs-multi comparison study: each member alone and the mixture of all,
for several seeds, as child runs of one parent run; then the analysis, logged back."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd

from soi_mlflow.errors import SoiInputError
from soi_mlflow.studies.parent import study_parent
from soi_mlflow.training import TrainConfig, train, validate_config


@dataclass
class CompareResult:
    parent_run_id: str
    summary: pd.DataFrame
    single: dict[str, list[str]]
    multi: list[str]
    ui_command: str


def validate_compare(base: TrainConfig, seeds: int) -> None:
    validate_config(base)
    if len(base.mixture.members) < 2:
        raise SoiInputError("compare needs at least two members (each alone, then all together)")
    if seeds < 1:
        raise SoiInputError(f"seeds must be a positive integer, got {seeds!r}")


def run_compare(
    base: TrainConfig, seeds: int = 1, analyze_splits: tuple[str, ...] = ("train",)
) -> CompareResult:
    """Train every member alone and the mixture, ``seeds`` times; analyse; log to a parent."""
    from soi_mlflow.analysis.report import Comparison, analyze_run, compare

    validate_compare(base, seeds)
    spec = base.mixture
    with study_parent(
        base,
        "compare",
        f"compare-{spec.axis}-{'+'.join(spec.members)}",
        {"seeds": seeds},
        members=list(spec.members),
        ood=list(spec.ood) or None,
        setting="study",
        seeds=seeds,
    ) as parent:
        single: dict[str, list[str]] = {m: [] for m in spec.members}
        multi: list[str] = []
        plan = [(s, m) for s in range(seeds) for m in (*spec.members, None)]
        for k, (s, member) in enumerate(plan, 1):
            members = (member,) if member else spec.members
            what = f"single {member}" if member else f"multi {'+'.join(members)}"
            print(f"[{k}/{len(plan)}] training {what}, seed {base.seed + s}", flush=True)
            config = replace(
                base,
                mixture=replace(spec, members=members),
                seed=base.seed + s,
                parent_run_id=parent.run_id,
                run_name=None,
                tags={**base.tags, "soi.study": parent.run_id},
            )
            result = train(config)
            (single[member] if member else multi).append(result.run_id)
        print("analysing runs", flush=True)
        for run_id in [*multi, *(r for runs in single.values() for r in runs)]:
            analyze_run(run_id, analyze_splits, tracking_uri=parent.tracking_uri)
        summary = compare(
            parent.run_id,
            Comparison(single, multi, list(spec.ood)),
            tracking_uri=parent.tracking_uri,
        )
    return CompareResult(parent.run_id, summary, single, multi, parent.ui_command())


def format_summary(summary: pd.DataFrame) -> str:
    """The per-member table the commands print: accuracy and key SOI fractions."""
    cols = [c for c in summary.columns if c.startswith(("id_", "ood_"))]
    for subset in ("always_correct", "never_learned", "forgotten", "relearned"):
        cols += [c for c in (f"{subset}_single", f"{subset}_multi") if c in summary.columns]
    with pd.option_context("display.width", 200, "display.max_columns", 50):
        return summary[cols].round(3).to_string()
