"""Reading a study's child runs back from its parent run."""

from __future__ import annotations

from soi_mlflow.analysis.report import SingleVsMultiRuns
from soi_mlflow.analysis.runs import cache_for, find_runs
from soi_mlflow.errors import SoiInputError
from soi_mlflow.tracking.health import get_run


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
    ood = parent.data.tags.get("soi.ood", "")
    return SingleVsMultiRuns(single, multi, [o for o in ood.split(",") if o])
