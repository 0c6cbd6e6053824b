"""A transfer study of some targets (``--targets``): only the cells into them are trained,
logged and re-analysed; bad targets are refused before anything starts. The joint mode's
targeted study is tests/test_transfer_probes_e2e.py's (books from two sources)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from tracehelp import run_cli_here, small_config

from soi_mlflow.analysis import find_runs
from soi_mlflow.analysis.runs import cache_for
from soi_mlflow.errors import SoiInputError
from soi_mlflow.studies import transfer
from soi_mlflow.studies.transfer import TransferSettings
from soi_mlflow.tracking import tags

SMALL = ["--epochs", "2", "--max-examples", "60", "--eval-max-examples", "40", "--batch-size",
         "16", "--no-progress", "--log-model", "false"]  # fmt: skip


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        (("movies",), "targets: 'movies' is not a member of the study (members: books, dvd)"),
        (("books", "books"), "targets: a member is named twice (books, books)"),
    ],
)
def test_bad_targets_are_refused_before_a_run_opens(store, targets, message) -> None:
    config = small_config(store, ("books", "dvd"))
    with pytest.raises(SoiInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        transfer.run(config, TransferSettings(targets=targets))
    assert MlflowClient(store).search_experiments(filter_string="name != 'Default'") == []


@pytest.mark.e2e
def test_a_sequential_study_of_one_target_trains_and_relogs_only_its_cells(
    store, tmp_path: Path
) -> None:
    members = "sentiment,paraphrase,entailment"
    args = ["transfer", "--axis", "task", "--members", members, "--mode", "sequential"]
    out = run_cli_here([*args, "--targets", "entailment", *SMALL], store, tmp_path)
    # every member alone (a source's checkpoint comes from it), then one run per source:
    # 5 runs where the whole matrix takes 9
    assert "trained 5 runs, reused 0" in out
    parent = find_runs(tracking_uri=store, study="transfer")["run_id"][0]
    children = find_runs(tracking_uri=store, parent_run_id=parent)
    assert set(children["sequence"].dropna()) == {"sentiment>entailment", "paraphrase>entailment"}
    client = MlflowClient(store)
    run = client.get_run(parent)
    assert run.data.params["targets"] == "entailment"
    assert "only the cells into entailment" in run.data.tags[tags.LATENT_TRAITS]
    # the target alone needs no checkpoint: only the two sources log one
    logged = {r: {a.path for a in client.list_artifacts(r)} for r in children["run_id"]}
    with_checkpoint = {
        children.set_index("run_id").loc[r, "members"] for r, paths in logged.items()
        if "checkpoint" in paths
    }  # fmt: skip
    assert with_checkpoint == {"sentiment", "paraphrase"}

    def tables() -> tuple[pd.DataFrame, pd.DataFrame]:
        cache = cache_for(store)
        read = lambda name: pd.read_parquet(cache.file(parent, f"tables/{name}.parquet"))  # noqa: E731
        return read("transfer_scores"), read("transfer_mean")

    for _ in range(2):  # as the study logged them, then as analyze logs them again
        scores, mean = tables()
        assert set(scores["target"]) == {"entailment"}
        assert sorted(scores["source"].dropna()) == ["paraphrase", "sentiment"]
        assert mean["entailment"].drop("entailment").notna().all()
        assert np.isnan(mean.loc["entailment", "sentiment"]) and mean["paraphrase"].isna().all()
        out = run_cli_here(["analyze", "--parent-run-id", parent], store, tmp_path)
    assert "transfer matrix" in out
