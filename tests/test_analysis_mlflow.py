"""Reading runs back from a real MLflow store and logging analyses to it."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from tracehelp import scratch_store, small_config

from soi_mlflow.analysis import find_runs, load_examples, load_traces, soi_table, transitions
from soi_mlflow.analysis.report import analyze_run
from soi_mlflow.analysis.runs import cache_for
from soi_mlflow.errors import SoiInputError
from soi_mlflow.training import train

EPOCHS = 3


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    with scratch_store(tmp_path_factory, "analysis") as uri:
        out = {}
        for members in (("books", "movies"), ("books",)):
            config = small_config(
                uri,
                members,
                ("restaurants",),
                max_examples=80,
                eval_max_examples=40,
                epochs=EPOCHS,
                experiment="analysis-tests",
            )
            out[members] = train(config).run_id
    return uri, out[("books", "movies")], out[("books",)]


@pytest.mark.e2e
def test_soi_table_has_every_training_example_once(runs) -> None:
    uri, multi, _ = runs
    table = soi_table(multi, tracking_uri=uri)
    assert table.columns[:8].tolist() == [
        "example_id",
        "member",
        "soi",
        "confidence",
        "variability",
        "correctness",
        "forgetting_events",
        "first_learned_epoch",
    ]
    assert len(table) == 160 and table["example_id"].is_unique
    assert set(table["member"]) == {"books", "movies"}
    assert table.attrs["epochs"] == EPOCHS and table["confidence"].between(0, 1).all()
    traces = load_traces(multi, tracking_uri=uri)
    assert len(traces) == 160 * EPOCHS and sorted(traces["epoch"].unique()) == list(range(EPOCHS))
    examples = load_examples(multi, tracking_uri=uri)
    assert set(examples["example_id"]) == set(table["example_id"])
    ood = soi_table(multi, split="ood", tracking_uri=uri)
    assert len(ood) == 40 and set(ood["member"]) == {"restaurants"}


@pytest.mark.e2e
def test_artifacts_are_downloaded_once(runs) -> None:
    uri, multi, _ = runs
    cache = cache_for(uri)
    soi_table(multi, "validation", tracking_uri=uri)
    before = cache.downloads
    soi_table(multi, "validation", tracking_uri=uri)
    load_traces(multi, "validation", tracking_uri=uri)
    assert cache.downloads == before


@pytest.mark.e2e
def test_analyze_run_logs_metrics_tables_and_figures(runs) -> None:
    uri, multi, _ = runs
    tables = analyze_run(multi, ("train", "ood"), tracking_uri=uri)
    client = MlflowClient(uri)
    metrics = client.get_run(multi).data.metrics
    fracs = {
        k: v
        for k, v in metrics.items()
        if k.startswith("soi/train/") and k.count("/") == 2 and k.endswith("_frac")
    }
    assert len(fracs) == 6 and sum(fracs.values()) == pytest.approx(1.0)
    assert metrics["soi/train/coverage"] == 1.0 == metrics["soi/train/books/coverage"]
    assert "soi/train/books/never_learned_frac" in metrics and "soi/ood/forgotten_frac" in metrics
    figures = {a.path for a in client.list_artifacts(multi, "figures")}
    assert {
        "figures/soi_distribution_train.png",
        "figures/datamap_train.png",
        "figures/datamap_ood.png",
    } <= figures
    logged = pd.read_parquet(cache_for(uri).file(multi, "tables/soi_train.parquet"))
    assert logged["example_id"].tolist() == tables["train"]["example_id"].tolist()
    assert logged["soi"].astype(str).tolist() == tables["train"]["soi"].astype(str).tolist()
    fractions = pd.read_json(
        cache_for(uri).file(multi, "tables/soi_fractions_train.json"), orient="split"
    ).set_index("member")
    assert fractions.loc["all", "examples"] == 160 and fractions.loc["books", "examples"] == 80
    share = tables["train"]["soi"].astype(str).value_counts(normalize=True)
    assert fractions.loc["all", "never_learned"] == pytest.approx(
        share.get("never_learned", 0.0), abs=1e-4
    )
    run = client.get_run(multi)
    assert {"path": "tables/soi_fractions_train.json", "type": "table"} in json.loads(
        run.data.tags["mlflow.loggedArtifacts"]
    )
    note = run.data.tags["mlflow.note.content"]
    assert note.startswith("**Multi-setting training run** on books, movies")
    assert "#### Analysis" in note and "html/datamap_ood.html" in note


@pytest.mark.e2e
def test_analysis_logs_an_interactive_data_map_with_the_texts(runs) -> None:
    uri, multi, _ = runs
    analyze_run(multi, ("train",), tracking_uri=uri)
    analyze_run(multi, ("train",), tracking_uri=uri)  # again: sections replaced, not doubled
    client = MlflowClient(uri)
    assert client.get_run(multi).data.tags["mlflow.note.content"].count("#### Analysis") == 1
    page = cache_for(uri).file(multi, "html/datamap_train.html").read_text()
    data = json.loads(page.split('id="soi-data">', 1)[1].split("</script>", 1)[0])
    examples = load_examples(multi, tracking_uri=uri).set_index("example_id")
    assert data["total"] == data["shown"] == 160
    for k in (0, 77, 159):
        example = examples.loc[int(data["cols"]["id"][k])]
        assert data["cols"]["text"][k] == example["text"]
        assert data["cats"]["member"][data["cols"]["member"][k]] == example["member"]
        assert data["cats"]["planted"][data["cols"]["planted"][k]] == example["planted"]


@pytest.mark.e2e
def test_transitions_between_a_single_and_a_multi_run(runs) -> None:
    uri, multi, single = runs
    m = transitions(single, multi, tracking_uri=uri)
    assert m.to_numpy().sum() == 80 and m.attrs["coverage"]["fraction_of_a"] == 1.0
    assert m.attrs["coverage"]["only_b"] == 80  # the movies examples have no partner
    books = transitions(single, multi, member="books", normalize="row", tracking_uri=uri)
    sums = books.sum(axis=1)
    assert np.allclose(sums[sums > 0], 1.0)


@pytest.mark.e2e
def test_find_runs_by_tags_and_filters(runs) -> None:
    uri, multi, single = runs
    found = find_runs("analysis-tests", tracking_uri=uri, setting="single")
    assert found["run_id"].tolist() == [single]
    both = find_runs("analysis-tests", "params.epochs = '3'", tracking_uri=uri, axis="source")
    assert set(both["run_id"]) == {single, multi} and "metrics.val/books/acc" in both.columns
    with pytest.raises(SoiInputError, match="no experiment named 'nope'"):
        find_runs("nope", tracking_uri=uri)
    with pytest.raises(SoiInputError, match="no traces of split 'dev'; its traced splits: ood, "):
        soi_table(single, "dev", tracking_uri=uri)
    with pytest.raises(SoiInputError, match="split name '../train'"):
        soi_table(single, "../train", tracking_uri=uri)


def test_analysis_needs_neither_lightning_nor_torch() -> None:
    code = (
        "import sys, soi_mlflow.analysis, soi_mlflow.analysis.report\n"
        "print([m for m in ('lightning', 'torch', 'transformers') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    code = (  # the command's help is quick: it imports none of them either
        "import sys\nfrom soi_mlflow.cli.main import main\ntry:\n    main()\n"
        "except SystemExit:\n    pass\n"
        "print([m for m in ('lightning', 'torch', 'transformers') if m in sys.modules])\n"
    )
    help_out = subprocess.run(
        [sys.executable, "-c", code, "analyze", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--parent-run-id" in help_out.stdout
    assert help_out.stdout.strip().splitlines()[-1] == "[]"
