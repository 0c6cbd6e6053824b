"""soi-mlflow against a team server: ``mlflow server --app-name soi`` with a real
PostgreSQL backend store (started here on 127.0.0.1) and proxied artifacts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from mlflow import MlflowClient
from plantruns import PATTERNS, plant_run
from postgres import pg_bindir, postgres_server
from servers import mlflow_server
from tracehelp import small_config

from soi_mlflow.analysis import find_runs, soi_table
from soi_mlflow.analysis.report import analyze_run
from soi_mlflow.training import train

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        pg_bindir() is None,
        reason="PostgreSQL is not installed (apt-get install postgresql; `make test` does it "
        "when run as root)",
    ),
]


@pytest.fixture(scope="module")
def team_server(tmp_path_factory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("team")
    with (
        postgres_server() as db,
        mlflow_server(folder, app_name="soi", backend_uri=db) as uri,
    ):
        yield uri


def test_training_and_analysis_work_unchanged(team_server, monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    run_id = train(small_config(team_server, experiment="team", max_examples=40)).run_id
    tables = analyze_run(run_id, ("train",), tracking_uri=team_server)
    assert len(tables["train"]) == 40
    assert len(soi_table(run_id, tracking_uri=team_server)) == 40
    found = find_runs("team", tracking_uri=team_server, members="books")
    assert found["run_id"].tolist() == [run_id]


def test_find_runs_pages_and_quotes_on_postgres(team_server) -> None:
    client = MlflowClient(team_server)
    exp = client.create_experiment("paging")
    values = ["it's", 'say "hi"', "both ' and \" \\", "100%_"]
    ids = {v: client.create_run(exp, tags={"soi.members": v}).info.run_id for v in values}
    for k in range(7):
        client.create_run(exp, tags={"soi.members": f"filler {k}"})
    assert len(client.search_runs([exp], max_results=3)) == 3
    assert len(find_runs("paging", tracking_uri=team_server, page_size=3)) == 11
    for value, run_id in ids.items():
        assert find_runs("paging", tracking_uri=team_server, members=value)["run_id"].tolist() == [
            run_id
        ]


def test_the_soi_page_is_served_from_postgres(team_server) -> None:
    import urllib.request

    client = MlflowClient(team_server)
    run_id, expected = plant_run(client, client.create_experiment("pages"))
    with urllib.request.urlopen(f"{team_server}/soi/table.csv?run_id={run_id}", timeout=60) as r:
        body = r.read().decode()
    for soi in PATTERNS:
        assert body.count(f",{soi},") == (expected["soi"] == soi).sum()
