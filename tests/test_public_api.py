"""The public analysis API, called twice through the package, on real runs in MLflow."""

from __future__ import annotations

import inspect
import pkgutil

from tracehelp import log_synthetic_run

import soi_mlflow.analysis as sa


def test_no_public_name_is_also_a_submodule() -> None:
    submodules = {m.name for m in pkgutil.iter_modules(sa.__path__)}
    assert not submodules & set(sa.__all__)


def test_every_public_function_works_twice_through_the_package(store) -> None:
    single = log_synthetic_run(store, {1: [0, 1, 1], 2: [1, 1, 1], 3: [0, 0, 0]}, run_name="a")
    multi = log_synthetic_run(store, {1: [1, 1, 1], 2: [1, 0, 1], 3: [0, 0, 1]}, run_name="b")
    mine = sa.Taxonomy("learned_or_not", (("learned", "n_correct > 0"), ("not", "n_correct == 0")))
    calls = {
        "find_runs": lambda: sa.find_runs(tracking_uri=store),
        "load_traces": lambda: sa.load_traces(single, tracking_uri=store),
        "load_examples": lambda: sa.load_examples(single, tracking_uri=store),
        "soi_table": lambda: sa.soi_table(single, tracking_uri=store),
        "soi_from_traces": lambda: sa.soi_from_traces(sa.load_traces(single, tracking_uri=store)),
        "transitions": lambda: sa.transitions(single, multi, tracking_uri=store),
        "register_taxonomy": lambda: sa.register_taxonomy(mine),
        "get_taxonomy": lambda: sa.get_taxonomy("learned_or_not"),
        "compare_runs": lambda: sa.compare_runs(single, multi, into="b", tracking_uri=store),
        "traces": lambda: sa.traces([single, multi], tracking_uri=store),
    }
    functions = {n for n in sa.__all__ if inspect.isfunction(getattr(sa, n))}
    assert functions == set(calls), "add each new public function to this test"
    for name, call in calls.items():
        first, second = call(), call()
        assert type(first) is type(second), name
    assert len(sa.find_runs(tracking_uri=store)) == 2
    assert len(sa.load_traces(single, tracking_uri=store)) == 9
    table = sa.soi_table(single, tracking_uri=store).set_index("example_id")["soi"]
    assert table.to_dict() == {1: "early_learned", 2: "always_correct", 3: "never_learned"}
    moves = sa.transitions(single, multi, tracking_uri=store)
    assert moves.loc["early_learned", "always_correct"] == 1
    assert moves.loc["always_correct", "relearned"] == 1
    assert moves.loc["never_learned", "late_learned"] == 1
    assert sa.get_taxonomy("learned_or_not") is mine
    both = sa.traces([single, multi], tracking_uri=store)
    per_run = both.aggregate("run_id, count(*) AS n, sum(pred = gold) AS right", "run_id").df()
    assert dict(zip(per_run["run_id"], per_run["n"], strict=True)) == {single: 9, multi: 9}
    assert dict(zip(per_run["run_id"], per_run["right"], strict=True)) == {single: 5, multi: 6}
