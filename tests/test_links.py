"""Links into the MLflow UI, the experiment kind tag and run descriptions, on a real store."""

from __future__ import annotations

from mlflow import MlflowClient

from soi_mlflow.tracking.links import (
    DESCRIPTION_TAG,
    md_escape,
    run_url,
    runs_table_url,
    set_description_section,
    ui_command,
)
from soi_mlflow.tracking.run import ensure_experiment


def test_links_open_the_model_training_view_on_the_run() -> None:
    assert run_url("http://h:5000", "3", "abc") == (
        "http://h:5000/#/experiments/3/runs/abc?workflowType=machine_learning"
    )
    url = runs_table_url("http://h", "3", "tags.`soi.study` = 'compare'")
    assert url.startswith("http://h/#/experiments/3/runs?workflowType=machine_learning&")
    assert "searchFilter=tags.%60soi.study%60%20%3D%20%27compare%27" in url
    local = ui_command("sqlite:///x.db", "3", "abc")
    assert local.startswith("mlflow ui --backend-store-uri sqlite:///x.db, then open")
    assert "http://127.0.0.1:5000/#/experiments/3/runs/abc?workflowType=machine_learning" in local
    served = ui_command("http://tracking:8080/", "3", "abc")
    assert "mlflow ui" not in served
    assert "http://tracking:8080/#/experiments/3/runs?workflowType=machine_learning" in served


def test_markdown_from_data_is_literal() -> None:
    text = md_escape("<b>x</b> [click](javascript:alert(1)) **y** #h")
    assert "<" not in text and ">" not in text
    assert "\\[click\\]\\(javascript:alert\\(1\\)\\)" in text and "\\*\\*y\\*\\*" in text
    assert md_escape("a & b") == "a &amp; b"


def test_created_experiments_are_model_training_ones(store) -> None:
    client = MlflowClient(store)
    exp = ensure_experiment(client, "kinds")
    assert client.get_experiment(exp).tags["mlflow.experimentKind"] == "custom_model_development"
    assert ensure_experiment(client, "kinds") == exp


def test_description_sections_are_replaced_not_repeated(store) -> None:
    client = MlflowClient(store)
    run = client.create_run(ensure_experiment(client, "notes")).info.run_id

    def note() -> str:
        return client.get_run(run).data.tags[DESCRIPTION_TAG]

    set_description_section(client, run, None, "What the run is.")
    set_description_section(client, run, "Analysis", "- first")
    set_description_section(client, run, "Pages", "- a link")
    set_description_section(client, run, "Analysis", "- second")
    assert note() == "What the run is.\n\n#### Analysis\n\n- second\n\n#### Pages\n\n- a link"
    set_description_section(client, run, None, "Renamed.")
    assert note().startswith("Renamed.\n\n#### Analysis") and note().count("####") == 2
