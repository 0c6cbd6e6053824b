"""Side effects (analysis/side_effects.py) of tiny real studies: logged into the parent by
the study and again by ``soi-mlflow analyze --parent-run-id``. The compare study's side
effects are checked by tests/test_study_e2e.py's compare test, on its study."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
import pytest
from mlflow import MlflowClient
from tracehelp import small_config

from soi_mlflow.analysis.runs import cache_for
from soi_mlflow.analysis.shift_factors import SHIFT_FACTORS
from soi_mlflow.cli import main
from soi_mlflow.studies import transfer
from soi_mlflow.studies.transfer import TransferSettings

pytestmark = pytest.mark.e2e

NAMES = ("side_effects_confusion", "side_effects_summary", "side_effects_prediction_shift")


def _tiny(uri: str, members: tuple[str, ...]):
    """12 examples a member, 8 to evaluate, 1 epoch."""
    config = small_config(uri, members, max_examples=12, eval_max_examples=8)
    return replace(config, epochs=1, experiment="side-effects")


def _logged(client: MlflowClient, run_id: str) -> tuple[set, set]:
    tables = {a.path for a in client.list_artifacts(run_id, "tables")}
    figures = {a.path for a in client.list_artifacts(run_id, "figures")}
    return tables, figures


def test_a_joint_transfer_study_logs_its_side_effects_and_analyze_redraws_them(
    store, capsys
) -> None:
    members = ("books", "movies", "electronics")
    result = transfer.run(_tiny(store, members), TransferSettings())
    client = MlflowClient(store)
    parent = result.parent_run_id
    tables, figures = _logged(client, parent)
    assert {f"tables/{n}.parquet" for n in NAMES} <= tables
    assert {f"tables/{n}.json" for n in NAMES} <= tables
    assert "figures/side_effects.png" in figures
    cache = cache_for(store)
    # what explains the shift toward each source's classes: 6 pairs, too few to rank
    factors = pd.read_parquet(cache.file(parent, f"tables/{SHIFT_FACTORS}.parquet"))
    assert set(factors["against"]) == {"shift toward source"} and factors["rank"].isna().all()
    assert "class_distribution_l1" in set(factors["factor"])
    assert factors["problem"].str.contains("too small to tell: 6 pairs").any()
    confusion = pd.read_parquet(cache.file(parent, "tables/side_effects_confusion.parquet"))
    assert confusion["problem"].isna().all()
    pairs = set(zip(confusion["source"], confusion["target"], strict=True))
    assert pairs == {(s, t) for s in members for t in members if s != t}
    # each (source, target) covers the target's 8 test examples, alone and with the source
    sums = confusion.groupby(["source", "target"])[["count_alone", "count_with"]].sum()
    assert (sums == 8).all().all() and (confusion["examples"] == 8).all()
    assert (confusion["count_delta"] == confusion["count_with"] - confusion["count_alone"]).all()
    # the alone run's confusion is the same whichever source it is compared with
    alone = confusion.groupby(["target", "gold", "pred"])["count_alone"].nunique()
    assert (alone == 1).all()
    # its diagonal is the target's test accuracy alone
    for target in members:
        part = confusion[(confusion["target"] == target) & (confusion["source"] != target)]
        part = part[part["source"] == part["source"].iloc[0]]
        right = part.loc[part["gold"] == part["pred"], "count_alone"].sum()
        alone_score = result.scores[
            result.scores["source"].isna() & (result.scores["target"] == target)
        ]["score"]
        assert right / 8 == pytest.approx(float(alone_score.iloc[0]))
    # as if logged by an older soi-mlflow: no tables, no figures; analyze logs them again
    artifacts = Path(urlparse(client.get_run(parent).info.artifact_uri).path)
    shutil.rmtree(artifacts / "tables")
    (artifacts / "figures" / "side_effects.png").unlink()
    assert main(["analyze", "--parent-run-id", parent, "--tracking-uri", store]) == 0
    tables, figures = _logged(client, parent)
    assert {f"tables/{n}.parquet" for n in (*NAMES, SHIFT_FACTORS)} <= tables
    assert "figures/side_effects.png" in figures
    capsys.readouterr()
