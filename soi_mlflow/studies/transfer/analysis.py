"""The analysis of a transfer study: the matrix (mean and std over seeds) with intervals,
its latent traits (PCA) and their figures, logged to the parent by the study
(``study.py``) and by its re-analysis (``reanalysis.py``)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from soi_mlflow.analysis import identified
from soi_mlflow.analysis.profiles import CLASS_SHARES, MEMBER_PROFILES, PAIR_SIMILARITY
from soi_mlflow.analysis.proxy_transfer import PROXY_TRANSFER
from soi_mlflow.analysis.side_effects import log_side_effects
from soi_mlflow.analysis.transfer import (
    biplot,
    heatmap,
    latent_traits,
    transfer_intervals,
    transfer_matrix,
)
from soi_mlflow.errors import SoiInputError
from soi_mlflow.studies.profiles import log_member_profiles
from soi_mlflow.studies.transfer.factors import log_transfer_factors
from soi_mlflow.tracking import tags
from soi_mlflow.tracking.artifacts import log_figures, log_table
from soi_mlflow.tracking.run import RunHandle, metric_safe
from soi_mlflow.training import TrainConfig


def log_transfer(
    parent: RunHandle,
    scores: pd.DataFrame,
    members: list[str],
    mode: str,
    seeds: int,
    config: TrainConfig | None = None,
    profiles: pd.DataFrame | None = None,
    similarity: pd.DataFrame | None = None,
    proxy: pd.DataFrame | None = None,
    targets: Sequence[str] = (),
    shares: pd.DataFrame | None = None,
):
    """The matrix, its latent traits, their figures, the scores and the side effects on
    the targets' confusion matrices, logged to ``parent``; with the study's base
    ``config``, its members' profiles and pair similarity (``studies/profiles.py``) and
    what explains T (``factors.py``): the asymmetry always, the factors when the profiles
    could be made. ``profiles``, ``similarity`` (frames as ``analysis/profiles.py``
    makes them), ``proxy`` (``analysis/proxy_transfer.py``) and ``shares`` (the members'
    class shares) take the place of the ones ``config``'s data would give. ``targets``:
    the members a study trained only the cells into (``TransferSettings.targets``): the
    other columns stay empty, and there is no PCA."""
    mean, std = transfer_matrix(scores, members)
    intervals = transfer_intervals(scores)
    log_table(parent.client, parent.run_id, intervals, "transfer_intervals")
    problems = identified.table_problems({"transfer_intervals": intervals})
    try:
        if targets and set(targets) != set(members):
            raise SoiInputError(
                f"the study trained only the cells into {', '.join(targets)} (targets); "
                "PCA needs every source-target pair"
            )
        traits = latent_traits(mean)
    except SoiInputError as exc:  # missing cells: keep the matrix, say why there is no PCA
        reason = identified.not_identified(exc)
        problems["latent traits (PCA)"] = reason
        parent.client.set_tag(parent.run_id, tags.LATENT_TRAITS, reason[:5000])
        traits = {"explained": pd.DataFrame({"component": [None], "problem": [reason]})}
    # the matrix figure's title names only the matrix's own (its cells', its traits')
    note = identified.title_note(problems)
    log_table(parent.client, parent.run_id, scores, "transfer_scores")
    log_table(parent.client, parent.run_id, mean, "transfer_mean")
    parent.log_metrics(
        {
            f"transfer/{metric_safe(src)}/{metric_safe(tgt)}": float(v)
            for (src, tgt), v in mean.stack().items()
            if pd.notna(v)
        },
        step=0,
    )
    log_table(parent.client, parent.run_id, std, "transfer_std")
    for name, frame in traits.items():
        log_table(parent.client, parent.run_id, frame, f"transfer_{name}")
    if profiles is None:
        profile_problems, made = log_member_profiles(parent, config, scores)
        problems.update(profile_problems)
        profiles, similarity = made.get(MEMBER_PROFILES), made.get(PAIR_SIMILARITY)
        proxy = made.get(PROXY_TRANSFER)
        shares = shares if shares is not None else made.get(CLASS_SHARES)
    found = log_transfer_factors(parent, scores, mean, traits, profiles, similarity, mode, proxy)
    problems.update(found.problems)
    spread = f"mean ± std over {seeds} seeds" if seeds > 1 else "one seed: no std"
    what = f"{mode}, test accuracy, {spread}"
    figs = {"transfer_matrix": heatmap(mean, std, f"Transfer T[source, target] ({what}){note}")}
    if "source_scores" in traits:
        figs["transfer_biplot"] = biplot(
            traits, f"Latent traits of the transfer matrix ({mode})", found.aligned
        )
    log_figures(parent.client, parent.run_id, figs)
    # side effects on the targets' confusion matrices (analysis/side_effects.py)
    problems |= log_side_effects(
        parent.client,
        parent.run_id,
        scores,
        parent.tracking_uri,
        f" ({mode})",
        factors=found.factors,
        shares=shares,
    )
    identified.report(parent.client, parent.run_id, problems)
    return mean, std, traits if "source_scores" in traits else {}
