"""``soi-mlflow recommend`` on transfer studies logged by hand into a real SQLite store
(the parent's scores table, its children's metrics, and optionally the members' profiles
and pair similarity, as the transfer study logs them): the ranked table, its width, the
notes, and the errors for bad input, naming the flag."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from tracehelp import scratch_store

from soi_mlflow.cli.main import main
from soi_mlflow.studies.recommend import order_verdict
from soi_mlflow.tracking import tags
from soi_mlflow.tracking.artifacts import log_table

MEMBERS = ["ant", "bee", "cat", "dog", "eel"]
UNMEASURED = {("dog", "ant"), ("eel", "ant")}


def _transfer(uri: str, profiles: bool, study: str = "transfer") -> str:
    """A transfer study's parent whose T[i, j] = 0.02 * key[i, j] (+ seed noise)."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("rec") or client.create_experiment("rec")
    exp_id = exp if isinstance(exp, str) else exp.experiment_id
    own = {tags.STUDY: study, tags.MEMBERS: ",".join(MEMBERS), tags.MODE: "joint"}
    parent = client.create_run(exp_id, tags=own).info.run_id
    rng = np.random.default_rng(0)
    key = rng.normal(size=(5, 5))
    rows = []
    for seed in (0, 1):
        cells = [(None, m) for m in MEMBERS]
        cells += [
            (MEMBERS[i], MEMBERS[j])
            for i, j in itertools.permutations(range(5), 2)
            if (MEMBERS[i], MEMBERS[j]) not in UNMEASURED
        ]
        for source, target in cells:
            t = 0.0 if source is None else 0.02 * key[MEMBERS.index(source), MEMBERS.index(target)]
            score = 0.6 + t + 0.002 * rng.normal()
            run = client.create_run(exp_id, tags={tags.PARENT_RUN_ID: parent}).info.run_id
            client.log_metric(run, f"test/{target}/acc", score)
            client.set_terminated(run)
            rows.append((seed, source, target, score, run))
    scores = pd.DataFrame(rows, columns=["seed", "source", "target", "score", "run_id"])
    log_table(client, parent, scores, "transfer_scores")
    if profiles:
        member = pd.DataFrame(
            {"size": [100.0, 200, 300, 400, 500], "class_entropy": rng.uniform(size=5)},
            index=pd.Index(MEMBERS, name="member"),
        )
        log_table(client, parent, member, "member_profiles")
        pairs = list(itertools.combinations(MEMBERS, 2))
        sim = pd.DataFrame(pairs, columns=["source", "target"])
        sim["vocab_jaccard"] = [key[MEMBERS.index(a), MEMBERS.index(b)] for a, b in pairs]
        log_table(client, parent, sim, "pair_similarity")
    client.set_terminated(parent)
    return parent


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    with scratch_store(tmp_path_factory, "recommend") as uri:
        yield (
            uri,
            {
                "profiles": _transfer(uri, True),
                "bare": _transfer(uri, False),
                "compare": _transfer(uri, False, study="compare"),
            },
        )


def _run(capsys, uri: str, *args: str) -> tuple[int, str, str]:
    code = main(["recommend", "--tracking-uri", uri, *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_ranked_table_marks_predicted_cells_and_fits_100_columns(studies, capsys):
    uri, ids = studies
    code, out, err = _run(capsys, uri, "--target", "ant", "--from", ids["profiles"])
    assert code == 0, err
    lines = out.splitlines()
    assert max(map(len, lines)) < 100, out
    rows = [line for line in lines if line.split()[1:2] and line.split()[1] in MEMBERS]
    evidence = ["predicted" if "predicted" in r else "measured" for r in rows]
    assert evidence == ["measured", "measured", "predicted", "predicted"], out
    assert {r.split()[1] for r in rows[2:]} == {"dog", "eel"}
    assert "leave one pair out" in out and "row mean" in out
    assert "no member profiles" not in out


def test_without_profiles_it_says_so_and_uses_the_row_mean(studies, capsys):
    uri, ids = studies
    code, out, err = _run(capsys, uri, "--target", "ant", "--from=" + ids["bare"])
    assert code == 0, err
    assert "no member profiles" in out and "row mean" in out
    assert "the predictor against the baselines" not in out


def test_candidates_restrict_the_table(studies, capsys):
    uri, ids = studies
    code, out, _ = _run(
        capsys, uri, "--target", "ant", "--from", ids["profiles"], "--candidates", "bee,eel"
    )
    assert code == 0
    named = {line.split()[1] for line in out.splitlines() if len(line.split()) > 2}
    assert {"bee", "eel"} <= named and not {"cat", "dog"} & named


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--target", "zebra"], "--target"),
        (["--target", "ant", "--candidates", "bee,zebra"], "--candidates"),
        (["--target", "ant", "--verify", "3"], "--verify"),
    ],
)
def test_bad_input_is_refused_naming_the_flag(studies, capsys, args, flag):
    uri, ids = studies
    code, _, err = _run(capsys, uri, "--from", ids["profiles"], *args)
    assert code == 2 and f"error: {flag}" in err, err


def test_a_parent_that_is_no_transfer_study_is_refused(studies, capsys):
    uri, ids = studies
    code, _, err = _run(capsys, uri, "--target", "ant", "--from", ids["compare"])
    assert code == 2 and "error: --from" in err and "not the parent run of a transfer" in err


def _arms(top: list[float], bottom: list[float]) -> pd.DataFrame:
    rows = []
    for seed, (t, b) in enumerate(zip(top, bottom, strict=True)):
        rows += [(seed, "alone", 0.5), (seed, "top", 0.5 + t), (seed, "bottom", 0.5 + b)]
    return pd.DataFrame(rows, columns=["seed", "arm", "score"])


@pytest.mark.parametrize(
    ("top", "bottom", "verdict"),
    [
        ([0.10, 0.12, 0.11], [0.0, 0.01, -0.01], "held"),
        ([0.10, -0.05, 0.02], [0.0, 0.01, 0.0], "held in the mean (interval includes 0)"),
        ([0.05], [0.0], "held in the mean (one seed: no interval)"),
        ([0.0, 0.01], [0.02, 0.03], "did not hold"),
    ],
)
def test_order_verdict_pairs_the_arms_by_seed(top, bottom, verdict):
    out = order_verdict(_arms(top, bottom)).set_index("quantity")
    assert (out["verdict"] == verdict).all()
    diff = out.loc["top-K minus bottom-K"]
    assert diff["mean"] == pytest.approx(np.mean(np.array(top) - np.array(bottom)))
    assert diff["n_seeds"] == len(top)
