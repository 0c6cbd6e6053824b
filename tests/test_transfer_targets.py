"""A transfer study of some targets (``--targets``): only the cells into them are trained,
logged and re-analysed; bad targets are refused before anything starts. The joint mode's
targeted study is tests/test_transfer_probes_e2e.py's (books from two sources)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from tracehelp import run_cli_here, small_config

from soi_mlflow.analysis import find_runs
from soi_mlflow.analysis.runs import cache_for
from soi_mlflow.errors import SoiInputError
from soi_mlflow.studies import transfer
from soi_mlflow.studies.transfer import TransferSettings, study_scores
from soi_mlflow.tracking import tags

SMALL = ["--epochs", "2", "--max-examples", "60", "--eval-max-examples", "40", "--batch-size",
         "16", "--no-progress", "--log-model", "false"]  # fmt: skip


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        (
            ("electronics",),
            "targets: 'electronics' is not a member of the study (members: books, movies)",
        ),
        (("books", "books"), "targets: a member is named twice (books, books)"),
        ("books", "targets: expected a sequence of member names, got the string 'books'"),
    ],
)
def test_bad_targets_are_refused_before_a_run_opens(store, targets, message) -> None:
    config = small_config(store, ("books", "movies"))
    with pytest.raises(SoiInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        transfer.run(config, TransferSettings(targets=targets))
    assert MlflowClient(store).search_experiments(filter_string="name != 'Default'") == []


def test_resuming_a_whole_matrix_study_with_targets_is_refused(store) -> None:
    # a parent as a version before targets logged it: no targets param
    client = MlflowClient(store)
    experiment = client.create_experiment("old")
    old = client.create_run(experiment, tags={tags.STUDY: "transfer"}).info.run_id
    for key, value in (("mode", "joint"), ("seeds", "1"), ("reuse", "False")):
        client.log_param(old, key, value)
    client.set_terminated(old)
    config = replace(small_config(store, ("books", "movies")), experiment="old")
    with pytest.raises(SoiInputError, match=r"targets=all \(now books\)"):
        transfer.run(config, TransferSettings(targets=("books",), resume=old))
    assert client.get_run(old).info.status == "FINISHED"  # not reopened


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

    def check(scores: pd.DataFrame, mean: pd.DataFrame) -> None:
        # every member's run alone (the sources' own-run factors come from them), and the
        # cells into entailment
        assert sorted(scores.loc[scores["source"].isna(), "target"]) == sorted(members.split(","))
        cells = scores[scores["source"].notna()]
        assert set(cells["target"]) == {"entailment"}
        assert sorted(cells["source"]) == ["paraphrase", "sentiment"]
        assert mean["entailment"].drop("entailment").notna().all()
        assert np.isnan(mean.loc["entailment", "sentiment"]) and mean["paraphrase"].isna().all()

    cache = cache_for(store)
    read = lambda name: pd.read_parquet(cache.file(parent, f"tables/{name}.parquet"))  # noqa: E731
    check(read("transfer_scores"), read("transfer_mean"))
    profiles = read("member_profiles")
    assert profiles["difficulty_error"].notna().all()  # sources' own runs included
    # as if the study had stopped before its tables: analyze reads the children, keeps
    # the study's own cells, and shows only the target's column
    shutil.rmtree(Path(urlparse(run.info.artifact_uri).path) / "tables")
    out = run_cli_here(["analyze", "--parent-run-id", parent], store, tmp_path)
    check(read("transfer_scores"), read("transfer_mean"))
    matrix = out[out.index("transfer matrix") :]
    assert "entailment" in matrix and "paraphrase  " not in matrix.splitlines()[1]


@pytest.mark.e2e
def test_a_joint_study_of_one_target_keeps_its_cells_when_read_from_its_children(
    store,
) -> None:
    config = small_config(store, ("books", "movies", "electronics"), max_examples=30)
    result = transfer.run(replace(config, epochs=1), TransferSettings(targets=("books",)))
    assert result.trained == 3  # books alone, movies+books, electronics+books
    run = MlflowClient(store).get_run(result.parent_run_id)
    shutil.rmtree(Path(urlparse(run.info.artifact_uri).path) / "tables")
    scores, _ = study_scores(result.parent_run_id, store)  # what recommend reads
    assert set(scores["target"]) == {"books"}
    assert sorted(scores["source"].dropna()) == ["electronics", "movies"]
