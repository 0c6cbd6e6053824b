"""``soi-mlflow recommend --verify 1`` on a tiny real transfer study (3 members, 12
examples a member, 1 epoch): the recommend parent (its tags, tables and verdict), its
children (the target alone, with the top and with the bottom candidate) nested under it,
the printed verdict, and ``analyze --parent-run-id`` re-analysing it."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest
from mlflow import MlflowClient
from tracehelp import small_config

from soi_mlflow.analysis.proxy_transfer import PROXY_TRANSFER
from soi_mlflow.cli.main import main
from soi_mlflow.studies import transfer
from soi_mlflow.studies.reanalyze import reanalyze
from soi_mlflow.studies.recommend.evidence import gather
from soi_mlflow.tracking import tags

pytestmark = pytest.mark.e2e
MEMBERS = ("books", "movies", "electronics")


def test_recommend_verify_trains_top_and_bottom_and_reports_the_order(store, capsys):
    base = small_config(store, MEMBERS, max_examples=12, eval_max_examples=8)
    study = transfer.run(replace(base, epochs=1), transfer.TransferSettings())
    capsys.readouterr()
    code = main(
        ["recommend", "--target", "books", "--from", study.parent_run_id,
         "--verify", "1", "--tracking-uri", store]
    )  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    shown = out.out.split("parent run id")[0]  # then the links, URLs as long as they are
    assert max(map(len, shown.splitlines())) < 100, out.out
    assert "verdict: the predicted order " in out.out
    assert out.out.index("auxiliary members for books") < out.out.index("[1/3] alone")
    # the transfer study logged its members' profiles and pair similarity: read, no note
    assert "no member profiles" not in out.out
    # ... and its proxy transfer, a factor of every pair the predictor learns from
    evidence = gather((study.parent_run_id,), store)
    assert evidence.factors is not None and evidence.factors[PROXY_TRANSFER].notna().all()

    client = MlflowClient(store)
    runs = client.search_runs(
        [client.get_run(study.parent_run_id).info.experiment_id],  # the study's experiment
        f"tags.`{tags.STUDY}` = 'recommend'",
    )
    assert len(runs) == 1
    parent = runs[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags[tags.TARGET] == "books"
    assert parent.data.tags[tags.RECOMMEND_FROM] == study.parent_run_id
    verdict_tag = parent.data.tags[tags.RECOMMEND_VERDICT]
    assert verdict_tag.split(":")[0] in out.out
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.`{tags.PARENT_RUN_ID}` = '{parent.info.run_id}'"
    )
    arms = {c.data.tags[tags.ARM]: c.data.tags[tags.MEMBERS] for c in children}
    assert set(arms) == {"alone", "top", "bottom"} and arms["alone"] == "books"
    assert {arms["top"], arms["bottom"]} == {"books,movies", "books,electronics"}
    assert all(c.info.status == "FINISHED" for c in children)
    # new runs, not the study's again: seed 0 trained books alone there, so seed 1 here
    assert {c.data.tags[tags.SEED] for c in children} == {str(base.seed + 1)}
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "tables")}
    for name in ("recommend_table", "recommend_verify", "recommend_verdict"):
        assert f"tables/{name}.parquet" in logged

    again = reanalyze(parent.info.run_id, store)
    assert again.study == "recommend"
    (table,) = again.tables.values()
    assert isinstance(table, pd.DataFrame) and table["n_seeds"].tolist() == [1, 1, 1]
