"""Redo the single-vs-multi study's analysis (study kind ``compare``) from its children:
each child analysed again on the given splits, then the transitions and the summary,
logged to the parent."""

from __future__ import annotations

from typing import Any

from soi_mlflow.analysis import identified
from soi_mlflow.analysis.report import SingleVsMultiRuns, analyze_run, log_single_vs_multi
from soi_mlflow.analysis.runs import cache_for, find_runs
from soi_mlflow.common import console
from soi_mlflow.errors import SoiInputError
from soi_mlflow.studies.profiles import alone_scores, log_member_profiles, logged_config
from soi_mlflow.studies.readback import Reanalysis, ReanalysisOptions
from soi_mlflow.tracking import tags
from soi_mlflow.tracking.health import get_run
from soi_mlflow.tracking.run import RunHandle


def comparison_of(parent_run_id: str, tracking_uri: str | None = None) -> SingleVsMultiRuns:
    """The single and multi runs of a comparison study, ordered by seed."""
    cache = cache_for(tracking_uri)
    client = cache.client
    parent = get_run(client, parent_run_id, cache.tracking_uri, "parent run id")
    experiment = client.get_experiment(parent.info.experiment_id).name
    children = find_runs(experiment, tracking_uri=tracking_uri, parent_run_id=parent_run_id)
    if children.empty:
        raise SoiInputError(f"run {parent_run_id} has no child runs")
    children = children[children["status"] == "FINISHED"].sort_values(
        "seed", key=lambda s: s.astype(int)
    )
    single: dict[str, list[str]] = {}
    for _, child in children[children["setting"] == "single"].iterrows():
        single.setdefault(child["members"], []).append(child["run_id"])
    multi = children[children["setting"] == "multi"]["run_id"].tolist()
    if not single or not multi:
        raise SoiInputError(f"run {parent_run_id} needs finished single and multi child runs")
    ood = parent.data.tags.get(tags.OOD, "")
    return SingleVsMultiRuns(single, multi, [o for o in ood.split(",") if o])


def reanalyze(handle: RunHandle, run: Any, options: ReanalysisOptions) -> Reanalysis:
    """Analyse every child again on ``options.splits`` (a ``[k/n]`` line each), then
    compare the single and multi runs on the first split; the summary is in
    ``data["summary"]``, as :func:`soi_mlflow.studies.single_vs_multi.summary_rows`
    reads it."""
    uri = handle.tracking_uri
    comparison = comparison_of(handle.run_id, uri)
    run_ids = [*comparison.multi, *(r for runs in comparison.single.values() for r in runs)]
    client = cache_for(uri).client
    for k, run_id in enumerate(run_ids, 1):
        name = client.get_run(run_id).info.run_name
        console.step(k, len(run_ids), f"analysing run {name} ({run_id})")
        analyze_run(run_id, list(options.splits), options.taxonomy, uri, engine=options.engine)
    print("comparing single and multi runs (transitions, figures)", flush=True)
    summary = log_single_vs_multi(
        handle.run_id,
        comparison,
        options.splits[0],
        options.taxonomy,
        options.aggregate,
        uri,
        options.engine,
    )
    cache = cache_for(uri)
    config = logged_config(cache, run, list(comparison.single), run_ids)
    problems, _ = log_member_profiles(handle, config, alone_scores(client, comparison.single))
    identified.report(client, handle.run_id, problems)
    return Reanalysis("compare", data={"summary": summary})
