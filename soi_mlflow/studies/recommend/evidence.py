"""What a recommendation learns from: the transfer studies named by ``--from``, read back
from MLflow (their per-seed deltas; the members' profiles, pair similarity and proxy
transfer when their parents hold them) and the training set-up of their runs."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pandas as pd
import yaml

from soi_mlflow.analysis.proxy_transfer import PROXY_TRANSFER
from soi_mlflow.analysis.runs import cache_for
from soi_mlflow.analysis.transfer import transfer_deltas
from soi_mlflow.analysis.transfer_factors import pair_factors
from soi_mlflow.errors import SoiInputError
from soi_mlflow.studies.transfer.reanalysis import study_scores
from soi_mlflow.training import TrainConfig
from soi_mlflow.training.settings_io import CONFIG_ARTIFACT, build

PROFILES = "tables/member_profiles.parquet"
SIMILARITY = "tables/pair_similarity.parquet"
PROXY = f"tables/{PROXY_TRANSFER}.parquet"


@dataclass
class Evidence:
    """The measured deltas of every study, the pairs' factors (None without profiles),
    the alone runs of each member (to repeat their set-up) and notes to print."""

    deltas: pd.DataFrame
    factors: pd.DataFrame | None
    alone_runs: dict[str, str]
    modes: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    next_seed: int = 0  # the first seed no study trained: --verify's runs are new ones

    @property
    def members(self) -> list[str]:
        found = set(self.deltas["source"].dropna()) | set(self.deltas["target"])
        return sorted(found)


def gather(parents: tuple[str, ...], tracking_uri: str | None = None) -> Evidence:
    """Read every study of ``parents`` (``--from``); refused, naming the flag, when one is
    not the parent of a transfer study."""
    if not parents:
        raise SoiInputError("--from: give at least one transfer study's parent run id")
    cache = cache_for(tracking_uri)
    deltas, profiles, similarity, proxy, alone, notes, modes = [], [], [], [], {}, [], set()
    for parent in dict.fromkeys(parents):
        try:
            scores, run = study_scores(parent, tracking_uri)
        except SoiInputError as exc:
            raise SoiInputError(f"--from: {exc}") from exc
        modes.add(run.data.tags.get("soi.mode", "joint"))
        deltas.append(transfer_deltas(scores))
        for r in scores[scores["source"].isna()].sort_values("seed").itertuples():
            alone.setdefault(r.target, r.run_id)
        logged = {a.path for a in cache.client.list_artifacts(parent, "tables")}
        if PROFILES in logged:
            frame = pd.read_parquet(cache.file(parent, PROFILES))
            profiles.append(frame.set_index("member") if "member" in frame.columns else frame)
        else:
            notes.append(
                f"study {parent} has no member profiles ({PROFILES}): only its measured "
                "cells and the row mean are used for it"
            )
        if SIMILARITY in logged:
            similarity.append(pd.read_parquet(cache.file(parent, SIMILARITY)))
        if PROXY in logged:
            proxy.append(pd.read_parquet(cache.file(parent, PROXY)))
        elif PROFILES in logged:  # a study analysed before the proxy existed
            notes.append(
                f"study {parent} has no proxy transfer ({PROXY}): its pairs go without that "
                f"factor; `soi-mlflow analyze --parent-run-id {parent}` adds it"
            )
    measured = pd.concat(deltas, ignore_index=True)
    next_seed = int(measured["seed"].max()) + 1 if len(measured) else 0
    factors = None
    if profiles:
        merged = pd.concat(profiles)
        merged = merged[~merged.index.duplicated()]
        sim = pd.concat(similarity, ignore_index=True) if similarity else None
        gains = pd.concat(proxy, ignore_index=True) if proxy else None
        members = sorted(set(measured["source"].dropna()) | set(measured["target"]))
        factors = pair_factors(merged, sim, itertools.permutations(members, 2), gains)
    return Evidence(measured, factors, alone, modes, notes, next_seed)


def training_config(run_id: str, tracking_uri: str | None = None) -> TrainConfig:
    """The TrainConfig of a training run, from the ``config.yaml`` it logged."""
    cache = cache_for(tracking_uri)
    try:
        text = cache.file(run_id, CONFIG_ARTIFACT).read_text()
    except Exception as exc:  # noqa: BLE001 - an artifact missing: say which run
        raise SoiInputError(
            f"--from: run {run_id} has no {CONFIG_ARTIFACT}, so its set-up cannot be "
            f"repeated for --verify ({exc})"
        ) from exc
    values = yaml.safe_load(text) or {}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return build(TrainConfig, values)
