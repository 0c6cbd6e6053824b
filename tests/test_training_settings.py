"""The one table of training settings (``soi_mlflow/training/key.py``: ``SETTINGS``):
every field of the settings classes is classified there, and the run params, the training
key and the resume check all follow from it. No test here trains a model."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import replace
from pathlib import Path

import pytest
from tracehelp import small_config

from soi_mlflow.errors import SoiInputError
from soi_mlflow.tracking.local import checkpoint_path
from soi_mlflow.tracking.run_open import open_run
from soi_mlflow.training import TrainConfig, preflight, run_params, run_tags


def _leaf_fields(cls: type, prefix: str = "") -> set[str]:
    """Every field of ``cls`` by its path from a ``TrainConfig`` (``mixture.data_dir``),
    nested settings dataclasses walked instead of listed."""
    hints = typing.get_type_hints(cls)
    out: set[str] = set()
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if isinstance(kind, type) and dataclasses.is_dataclass(kind):
            out |= _leaf_fields(kind, f"{prefix}{f.name}.")
        else:
            out.add(prefix + f.name)
    return out


def test_every_field_of_the_settings_classes_is_in_the_table() -> None:
    from soi_mlflow.training.key import SETTINGS

    fields = _leaf_fields(TrainConfig)
    assert "mixture.data_dir" in fields and "tracking_uri" in fields  # the walk reaches both
    paths = [s.path for s in SETTINGS]
    assert len(paths) == len(set(paths)), "a field listed twice"
    assert not fields - set(paths), f"fields not in SETTINGS: {sorted(fields - set(paths))}"
    assert not set(paths) - fields, f"SETTINGS names no such field: {set(paths) - fields}"


def test_what_the_table_leaves_out_has_a_reason() -> None:
    from soi_mlflow.training.key import SETTINGS

    for s in SETTINGS:
        partial = s.key is None or s.param is None or not s.resume
        assert bool(s.why) == partial, f"{s.path}: give a reason exactly when left out"
        assert not s.resume or s.param is not None, f"{s.path}: resume compares the param"
    out = {s.path for s in SETTINGS if s.key is None and s.param is None}
    assert {"tracking_uri", "experiment", "run_name", "progress", "analyze"} <= out
    assert {"mixture.data_dir", "mixture.eval_max_examples"} <= {
        s.path for s in SETTINGS if s.key and s.param and s.resume
    }


def test_run_params_and_key_follow_the_table() -> None:
    from soi_mlflow.training.key import SETTINGS, training_settings

    config = small_config("sqlite:///unused.db", ("books", "movies"))
    config = replace(config, mixture=replace(config.mixture, data_dir="/data/hub"))
    params = run_params(config)
    assert params["data_dir"] == "/data/hub" and params["eval_max_examples"] == 50
    assert set(params) == {s.param_name for s in SETTINGS if s.param is not None}
    assert set(training_settings(config)) == {s.field for s in SETTINGS if s.key is not None}
    capped = replace(config, mixture=replace(config.mixture, member_max_examples=(("books", 9),)))
    assert run_params(capped)["member_max_examples"] == "books=9"


def _interrupted_run(uri: str, config: TrainConfig) -> str:
    """A RUNNING run opened and logged as ``train`` opens one, with a resume checkpoint
    file in its local folder (``preflight`` only checks that the file is there)."""
    run = open_run(uri, experiment="resume-tests", run_name="r", tags=run_tags(config))
    run.log_params(run_params(config))
    ckpt = checkpoint_path(run.run_id)
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"not read by preflight")
    return run.run_id


@pytest.mark.parametrize(
    ("first", "then", "named"),
    [
        ({"data_dir": "/data/a"}, {"data_dir": "/data/b"}, "data_dir=/data/b (run has /data/a)"),
        ({"data_dir": "/data/a"}, {"data_dir": None}, "data_dir=None (run has /data/a)"),
        ({}, {"data_dir": "/data/b"}, "data_dir=/data/b (run has none)"),
        ({}, {"eval_max_examples": 20}, "eval_max_examples=20 (run has 50)"),
        ({}, {"eval_max_examples": None}, "eval_max_examples=None (run has 50)"),
        ({}, {"member_max_examples": (("books", 9),)}, "member_max_examples=books=9"),
        ({}, {"max_examples": 59}, "max_examples=59 (run has 60)"),
    ],
)
def test_resume_with_other_data_is_refused(store, first: dict, then: dict, named: str) -> None:
    config = small_config(store, ("books", "movies"))
    config = replace(config, mixture=replace(config.mixture, **first))
    run_id = _interrupted_run(store, config)
    other = replace(config, mixture=replace(config.mixture, **then), resume=run_id)
    with pytest.raises(SoiInputError, match="trained with other settings") as refused:
        preflight(other)
    assert named in str(refused.value)


def test_resume_with_the_same_settings_and_more_epochs_is_allowed(store) -> None:
    config = small_config(store, ("books", "movies"), ("restaurants",))
    config = replace(config, mixture=replace(config.mixture, data_dir="/data/a"))
    run_id = _interrupted_run(store, config)
    # what only records or where it runs may change, and a resumed run may train longer
    again = replace(config, resume=run_id, epochs=5, progress=False, accelerator="cpu")
    assert preflight(again) == checkpoint_path(run_id)
    assert isinstance(preflight(again), Path)
    with pytest.raises(SoiInputError, match=r"ood= \(run has restaurants\)"):
        preflight(replace(again, mixture=replace(again.mixture, ood=())))


def test_resume_check_without_a_store(tmp_path) -> None:
    from soi_mlflow.training.key import TRAINING_KEY_TAG, resume_differences, training_key

    suite = tmp_path / "suite.yaml"
    suite.write_text("name: mine\n")
    config = small_config("sqlite:///unused.db", ("books", "movies"))
    config = replace(config, mixture=replace(config.mixture, suite=str(suite)))
    params = {k: str(v) for k, v in run_params(config).items() if v is not None}
    tags = {TRAINING_KEY_TAG: training_key(config)}
    assert resume_differences(replace(config, epochs=9), params, tags) == []
    # `mlflow run` logs its entry point's defaults: settings that do not apply are not compared
    mlflow_run = params | {"temperature": "3.0", "affinity_step": "optimizer"}
    assert resume_differences(config, mlflow_run, tags) == []
    # a run logged before a param existed, without the key: nothing to compare it with
    old = {k: v for k, v in params.items() if k != "eval_max_examples"}
    assert (
        resume_differences(
            replace(config, mixture=replace(config.mixture, eval_max_examples=7)), old, {}
        )
        == []
    )
    suite.write_text("name: mine\nedited: true\n")  # same name, other content: the key tells
    assert resume_differences(config, params, tags) == [
        "the content of the suite file or of the starting checkpoint"
    ]
