"""The single-vs-multi study (the ``compare`` command): each member alone and the
mixture of all, for several seeds, as child runs of one parent run; then the analysis,
logged back."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pandas as pd

from soi_mlflow.analysis import identified
from soi_mlflow.common.console import step
from soi_mlflow.common.seeds import check_seed
from soi_mlflow.errors import SoiInputError
from soi_mlflow.studies.fanout import Child, Fanout, StudySettings, check_study
from soi_mlflow.studies.parent import study_parent
from soi_mlflow.studies.profiles import alone_scores, log_member_profiles
from soi_mlflow.studies.result import StudyResult
from soi_mlflow.training import TrainConfig, validate_config


@dataclass
class SingleVsMultiSettings(StudySettings):
    """The single-vs-multi study's own options (the training options are TrainConfig's)."""

    seeds: int = 1
    """seeds per setting: each member alone and the mixture are trained this many times"""
    analyze_splits: tuple[str, ...] = field(default=("train",), metadata={"cli": False})
    """the splits each child is analysed on (from Python; the command analyses train)"""


@dataclass
class SingleVsMultiResult(StudyResult):
    """The per-member summary and the child runs: per member its single runs, the multi
    runs, one per seed."""

    summary: pd.DataFrame
    single: dict[str, list[str]]
    multi: list[str]


def validate(base: TrainConfig, settings: SingleVsMultiSettings) -> None:
    """Refuse a bad study before anything is trained."""
    validate_config(base)
    if len(base.mixture.members) < 2:
        raise SoiInputError("compare needs at least two members (each alone, then all together)")
    if settings.seeds < 1:
        raise SoiInputError(f"seeds must be a positive integer, got {settings.seeds!r}")
    check_seed(base.seed, "seed", settings.seeds)


def run(base: TrainConfig, settings: SingleVsMultiSettings) -> SingleVsMultiResult:
    """Train every member alone and the mixture, ``settings.seeds`` times; analyse; log
    to a parent."""
    # draws figures: matplotlib is imported when a study analyses, not with its settings
    # deferred: matplotlib
    from soi_mlflow.analysis.report import SingleVsMultiRuns, analyze_run, log_single_vs_multi

    validate(base, settings)
    seeds, analyze_splits = settings.seeds, settings.analyze_splits
    spec = base.mixture
    check_study(base, settings)
    with (
        study_parent(
            base,
            "compare",
            f"compare-{spec.axis}-{'+'.join(spec.members)}",
            {"seeds": seeds},
            resume=settings.resume,
            members=list(spec.members),
            ood=list(spec.ood) or None,
            setting="study",
            seeds=seeds,
        ) as parent,
        Fanout(parent, settings) as fan,
    ):
        single: dict[str, list[str]] = {m: [] for m in spec.members}
        multi: list[str] = []
        plan = [(s, m) for s in range(seeds) for m in (*spec.members, None)]
        children = []
        for s, member in plan:
            members = (member,) if member else spec.members
            what = f"single {member}" if member else f"multi {'+'.join(members)}"
            config = replace(
                base,
                mixture=replace(spec, members=members),
                seed=base.seed + s,
                run_name=None,
                analyze=False,  # analysed below, with the study's splits
            )
            children.append(Child(fan.nested(config, {}), f"{what} seed {base.seed + s}"))
        whats: dict[str, str] = {}
        for (_, member), child, done in zip(plan, children, fan.run(children), strict=True):
            (single[member] if member else multi).append(done.run_id)
            whats[done.run_id] = child.what
        run_ids = [*multi, *(r for runs in single.values() for r in runs)]
        for k, run_id in enumerate(run_ids, 1):
            step(k, len(run_ids), f"analysing {whats[run_id]} ({run_id})")
            analyze_run(run_id, analyze_splits, tracking_uri=parent.tracking_uri)
        summary = log_single_vs_multi(
            parent.run_id,
            SingleVsMultiRuns(single, multi, list(spec.ood)),
            tracking_uri=parent.tracking_uri,
        )
        # the members' profiles and pairs' similarity (studies/profiles.py)
        problems, _ = log_member_profiles(parent, base, alone_scores(parent.client, single))
        identified.report(parent.client, parent.run_id, problems)
    return SingleVsMultiResult(
        summary,
        single,
        multi,
        **fan.result_fields(),
    )


def summary_rows(summary: pd.DataFrame) -> tuple[list[str], list[list]]:
    """The summary as a narrow table (columns, rows): one row per member and setting
    with its test accuracy in-distribution and OOD, its training-set SOI fractions and
    coverage (the share of its examples with a subset)."""
    subsets = list(
        dict.fromkeys(c.rsplit("_", 1)[0] for c in summary.columns if c.endswith("_single"))
    )
    subsets = [s for s in subsets if s not in ("id", "ood")]
    has_ood = "ood_single" in summary.columns
    columns = ["member", "run", "ID\nacc", *(["OOD\nacc"] if has_ood else [])]
    columns += ["cover-\nage" if s == "coverage" else s.replace("_", "\n") for s in subsets]
    rows = []
    for member, row in summary.iterrows():
        for setting in ("single", "multi"):
            acc = [row[f"id_{setting}"], *([row[f"ood_{setting}"]] if has_ood else [])]
            fractions = [row.get(f"{s}_{setting}", float("nan")) for s in subsets]
            rows.append([member if setting == "single" else "", setting, *acc, *fractions])
    return columns, rows
