"""What a study's analysis cannot estimate is reported as "not identified", never raised;
and ``analyze --parent-run-id`` redoes each study kind's own analysis. No training here:
the studies' points are chosen by hand and the runs are planted in a real SQLite store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from soi_mlflow.studies.learning_curve import CurveSettings, analyse_points

AUX = ("movies", "electronics")
SETTINGS = CurveSettings("books", AUX, sizes=(50, 100, 200), seeds=1)


def _points(aux_score: float = 0.92) -> pd.DataFrame:
    """One seed: the target alone plateaus near 0.72; every auxiliary set scores above
    that plateau, so no worth (and no interaction) is determined."""
    rows = [
        {"seed": 0, "n": n, "curve": "alone", "aux_size": 0, "n_aux": 0, "score": s}
        for n, s in ((50, 0.60), (100, 0.70), (200, 0.72))
    ]
    for curve in (*AUX, "+".join(AUX)):
        aux = 1200 if "+" in curve else 600
        rows += [
            {"seed": 0, "n": n, "curve": curve, "aux_size": 600, "n_aux": aux, "score": aux_score}
            for n in (50, 100, 200)
        ]
    return pd.DataFrame(rows)


def test_interaction_without_identified_parts_is_not_identified_not_an_error() -> None:
    # the reported failure: "the interaction needs worth estimates of [...]" (exit 2)
    tables = analyse_points(_points(), SETTINGS)
    worth = tables["learning_curve_worth_over_sizes"]
    assert worth["mean"].isna().all()
    assert worth["problem"].str.startswith("not identified: ").all()
    assert worth["problem"].str.contains("beyond its curve").all()
    inter = tables["learning_curve_interaction_over_sizes"]
    assert len(inter) == 1 and np.isnan(inter["mean"].iloc[0])
    assert "the interaction needs the worth of every part" in inter["problem"].iloc[0]
    assert "movies, electronics, movies+electronics" in inter["problem"].iloc[0]
    ctx = tables["learning_curve_contextual"]
    assert ctx["problem"].str.startswith("not identified: ").all()


def test_identified_estimates_carry_no_problem() -> None:
    points = _points()
    points.loc[points["curve"] != "alone", "score"] = 0.65  # inside the alone curve
    tables = analyse_points(points, SETTINGS)
    worth = tables["learning_curve_worth_over_sizes"]
    assert worth["mean"].notna().all() and worth["problem"].isna().all()
    inter = tables["learning_curve_interaction_over_sizes"]
    assert inter["problem"].isna().all() and np.isfinite(inter["mean"]).all()


def test_a_seed_without_an_alone_curve_gives_its_reason() -> None:
    from soi_mlflow.analysis.worth import seed_worth

    points = _points(0.65)
    points = points[~((points["curve"] == "alone") & (points["n"] == 200))]
    worth = seed_worth(points)
    assert worth["worth"].isna().all()
    assert worth["problem"].str.contains("has 2 size\\(s\\); inverting it needs at least 3").all()


def test_a_missing_score_gives_a_not_identified_transfer_cell() -> None:
    from soi_mlflow.analysis.transfer import transfer_intervals, transfer_matrix

    scores = pd.DataFrame(
        [
            {"seed": 0, "source": None, "target": "a", "score": 0.7},
            {"seed": 0, "source": "a", "target": "b", "score": 0.8},  # b alone is missing
            {"seed": 0, "source": "b", "target": "a", "score": 0.75},
        ]
    )
    mean, _ = transfer_matrix(scores, ["a", "b"])
    assert np.isnan(mean.loc["a", "b"]) and mean.loc["b", "a"] == pytest.approx(0.05)
    cells = transfer_intervals(scores).set_index(["source", "target"])
    assert "no single-member score of 'b' for seed 0" in cells.loc[("a", "b"), "problem"]
    assert pd.isna(cells.loc[("b", "a"), "problem"])


def test_views_agreement_without_enough_pairs_is_not_identified() -> None:
    from soi_mlflow.studies.views import ViewsSettings, views_agreement

    values = pd.DataFrame(
        [
            {"view": v, "seed": s, "source": "a", "target": "b", "value": 0.1 * s}
            for v in ("transfer", "affinity")
            for s in (0, 1)
        ]
    )
    result = views_agreement(values, ViewsSettings())
    row = result["agreement"].iloc[0]
    assert np.isnan(row["spearman"]) and row["problem"].startswith("not identified: ")


# -- planted studies in a real store, re-analysed by the command ------------------------


def _planted_curve(
    client: MlflowClient, experiment_id: str, points: pd.DataFrame, old: bool = False
) -> str:
    """A learning-curve parent with one child per point, as the study logs them (``old``:
    as it logged them before ``soi.study`` had one meaning, the parent's id in it)."""
    parent = client.create_run(
        experiment_id, run_name="planted-curve", tags={"soi.study": "learning_curve"}
    ).info.run_id
    for key, value in {
        "target": "books",
        "members": "books,movies,electronics",
        "sizes": "50,100,200",
        "aux_sizes": "",
        "seeds": "1",
        "interval": "t, 0.95",
    }.items():
        client.log_param(parent, key, value)
    for row in points.itertuples():
        tags = {
            "mlflow.parentRunId": parent,
            "soi.curve": row.curve,
            "soi.target_size": str(row.n),
            "soi.aux_size": "" if row.curve == "alone" else str(row.aux_size),
            "soi.seed": str(row.seed),
        } | ({"soi.study": parent} if old else {})
        child = client.create_run(experiment_id, tags=tags).info.run_id
        client.log_metric(child, "test/books/acc", row.score)
        client.set_terminated(child, "FINISHED")
    return parent


def test_analyze_redoes_a_failed_learning_curve_study(store, capsys) -> None:
    from soi_mlflow.cli import main

    client = MlflowClient(store)
    parent = _planted_curve(client, "0", _points())
    client.set_terminated(parent, "FAILED")  # as the study ended before this fix
    assert main(["analyze", "--parent-run-id", parent, "--tracking-uri", store]) == 0
    out = capsys.readouterr().out
    assert "re-analysing the learning_curve study" in out and "(FAILED)" in out
    assert "interaction: all together minus the sum of the pairs" in out
    assert "single vs multi" not in out
    run = client.get_run(parent)
    assert run.info.status == "FAILED"  # its history stays; the results are added
    note = run.data.tags["mlflow.note.content"]
    assert "#### Not identified" in note and "beyond its curve" in note
    assert int(run.data.tags["soi.not_identified"]) >= 3
    tables = {a.path for a in client.list_artifacts(parent, "tables")}
    assert "tables/learning_curve_interaction_over_sizes.parquet" in tables
    figures = {a.path for a in client.list_artifacts(parent, "figures")}
    assert figures == {"figures/learning_curve.png", "figures/learning_curve_worth.png"}


def test_analyze_redoes_a_study_logged_with_the_old_child_tag(store, capsys) -> None:
    from soi_mlflow.cli import main

    client = MlflowClient(store)
    parent = _planted_curve(client, "0", _points(), old=True)
    assert main(["analyze", "--parent-run-id", parent, "--tracking-uri", store]) == 0
    assert "re-analysing the learning_curve study" in capsys.readouterr().out
    tables = {a.path for a in client.list_artifacts(parent, "tables")}
    assert "tables/learning_curve_fits.parquet" in tables
    for tags in ({}, {"soi.study": parent}):  # a child run, new and old: its parent is named
        run = client.create_run("0", tags={"mlflow.parentRunId": parent, **tags}).info.run_id
        assert main(["analyze", "--parent-run-id", run, "--tracking-uri", store]) == 2
        err = capsys.readouterr().err
        assert f"is a child run of run {parent}" in err and f"--parent-run-id {parent}" in err


def test_analyze_refuses_a_run_that_is_no_study_parent(store, capsys) -> None:
    from soi_mlflow.cli import main

    client = MlflowClient(store)
    plain = client.create_run("0").info.run_id
    assert main(["analyze", "--parent-run-id", plain, "--tracking-uri", store]) == 2
    assert "has no soi.study tag" in capsys.readouterr().err
    odd = client.create_run("0", tags={"soi.study": "ablation"}).info.run_id
    assert main(["analyze", "--parent-run-id", odd, "--tracking-uri", store]) == 2
    assert "unknown study kind 'ablation' in its soi.study tag" in capsys.readouterr().err
    noise = client.create_run("0", tags={"soi.study": "noise_benchmark"}).info.run_id
    assert main(["analyze", "--parent-run-id", noise, "--tracking-uri", store]) == 2
    err = capsys.readouterr().err
    assert "a noise_benchmark study cannot be re-analysed from its children" in err


def _child(client, experiment_id: str, parent: str, tags: dict, metrics: dict, **params) -> str:
    run = client.create_run(experiment_id, tags={"mlflow.parentRunId": parent, **tags})
    rid = run.info.run_id
    for key, value in params.items():
        client.log_param(rid, key, value)
    for key, values in metrics.items():
        for step, value in enumerate(values if isinstance(values, list) else [values]):
            client.log_metric(rid, key, value, step=step)
    client.set_terminated(rid, "FINISHED")
    return rid


def test_analyze_redoes_a_views_study_from_its_nested_studies(store, capsys) -> None:
    from soi_mlflow.cli import main

    members, seeds, rng = ("books", "movies", "electronics"), (0, 1), np.random.default_rng(0)
    client = MlflowClient(store)
    views = client.create_run("0", tags={"soi.study": "views"}).info.run_id
    client.log_param(views, "sizes", "10,20,40")
    transfer = _child(client, "0", views, {"soi.study": "transfer"}, {}, members=",".join(members))
    client.set_tag(transfer, "soi.members", ",".join(sorted(members)))
    for s in seeds:
        for m in members:
            acc = {f"test/{m}/acc": 0.6 + 0.01 * s}
            _child(client, "0", transfer, {"soi.members": m, "soi.seed": str(s)}, acc)
        for i, j in ((0, 1), (0, 2), (1, 2)):
            pair = sorted((members[i], members[j]))
            accs = {f"test/{m}/acc": float(rng.uniform(0.5, 0.8)) for m in pair}
            _child(client, "0", transfer, {"soi.members": ",".join(pair), "soi.seed": str(s)}, accs)
        curves = {
            f"affinity/{a}_to_{b}": [float(rng.normal()), float(rng.normal())]
            for a in members
            for b in members
            if a != b
        }
        _child(client, "0", views, {"soi.seed": str(s)}, curves, affinity_every="20",
               members=",".join(members))  # fmt: skip
    for target in members:
        curve = _child(client, "0", views, {"soi.study": "learning_curve"}, {}, target=target,
                       members=",".join(members), sizes="10,20,40", seeds="2")  # fmt: skip
        for s in seeds:
            for name in ("alone", *(m for m in members if m != target)):
                for n in (10, 20, 40):
                    tags = {"soi.curve": name, "soi.target_size": str(n), "soi.seed": str(s)}
                    tags["soi.aux_size"] = "" if name == "alone" else "5"
                    score = 0.5 + n / 200 + (0.05 if name != "alone" else 0) * rng.uniform()
                    _child(client, "0", curve, tags, {f"test/{target}/acc": score})
    client.set_terminated(views, "FAILED")
    assert main(["analyze", "--parent-run-id", views, "--tracking-uri", store]) == 0
    out = capsys.readouterr().out
    assert "re-analysing the views study" in out and "rank agreement between the views" in out
    tables = {a.path for a in client.list_artifacts(views, "tables")}
    assert {"tables/views_significance.parquet", "tables/views_agreement.parquet"} <= tables
    metrics = client.get_run(views).data.metrics
    assert {"agreement/transfer_vs_affinity/spearman", "compute/curves/seeds"} <= set(metrics)
    assert "soi.not_identified" in client.get_run(views).data.tags
