"""The defaults that apply only when nothing of their kind is given: two-stage's stage-2
selection, views' axis, analyze's experiment under ``mlflow run``. What a user gives is
taken as it is (tests/test_entry_points_e2e.py runs the entry points on them)."""

from __future__ import annotations

import logging

import pytest

from soi_mlflow.cli.main import COMMANDS, main
from soi_mlflow.cli.options import parse
from soi_mlflow.errors import SoiInputError
from soi_mlflow.studies.two_stage import DEFAULT_SUBSETS, TwoStageSettings


def test_two_stage_selects_forgettable_and_never_learned_only_when_given_nothing() -> None:
    assert DEFAULT_SUBSETS == ("forgettable", "never_learned")
    chosen = TwoStageSettings().selection()
    chosen.validate()
    assert chosen.describe() == "subsets:forgettable,never_learned"
    for given, described in (
        ({"stage2_region": "ambiguous"}, "region:ambiguous"),
        ({"stage2_top": "variability:0.3"}, "top:variability:0.3"),
        ({"stage2_bottom": "confidence:0.2"}, "bottom:confidence:0.2"),
        ({"stage2_subsets": ("forgotten",)}, "subsets:forgotten"),
    ):
        chosen = TwoStageSettings(**given).selection()
        chosen.validate()  # one selection: the default did not join it
        assert chosen.describe() == described
    for two in (
        {"stage2_region": "ambiguous", "stage2_subsets": ("forgotten",)},
        {"stage2_top": "variability:0.3", "stage2_subsets": ("forgotten",)},
        {"stage2_bottom": "confidence:0.2", "stage2_region": "ambiguous"},
        {"stage2_top": "variability:0.3", "stage2_bottom": "confidence:0.2"},
    ):
        with pytest.raises(SoiInputError, match="exactly one stage-2 selection"):
            TwoStageSettings(**two).selection().validate()  # none of the two is dropped
    other = TwoStageSettings(taxonomy="mine").selection()  # its names are not the default's
    assert other.subsets == () and other.region is None and other.metric is None


def test_two_stage_from_the_command_line_keeps_a_given_selection() -> None:
    (_, settings), _ = parse(COMMANDS["two-stage"], ["--stage2-region", "hard_to_learn"])
    assert settings.selection().describe() == "region:hard_to_learn"
    (_, settings), _ = parse(COMMANDS["two-stage"], [])
    assert settings.selection().describe() == "subsets:forgettable,never_learned"


@pytest.mark.parametrize(
    ("argv", "axis", "members"),
    [
        ([], "task", ("sentiment", "paraphrase", "entailment")),  # nothing given: task
        (["--axis", "source"], "source", ("books", "movies")),  # the suite's, as before
        (["--members", "books,movies,restaurants"], "source", ("books", "movies", "restaurants")),
        (["--axis", "task", "--members", "a,b,c"], "task", ("a", "b", "c")),
    ],
)
def test_views_takes_the_task_axis_only_when_given_no_axis_and_no_members(
    argv, axis, members
) -> None:
    (config, _), _ = parse(COMMANDS["views"], argv)
    assert config.mixture.axis == axis
    assert config.mixture.members[: len(members)] == members


def test_other_commands_keep_the_suites_default_mixture() -> None:
    for name in ("train", "compare", "transfer", "two-stage"):
        (config, *_), _ = parse(COMMANDS[name], [])
        assert (config.mixture.axis, config.mixture.members) == ("source", ("books", "movies"))


def test_analyze_given_nothing_outside_mlflow_run_still_asks(capsys, monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    try:
        assert main(["analyze"]) == 2
    finally:
        logging.disable(logging.NOTSET)  # main quiets the libraries for the process
    assert "give exactly one of --run-id, --parent-run-id" in capsys.readouterr().err
