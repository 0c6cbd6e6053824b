"""Trained models as MLflow Models: served by pyfunc without pickle, registered, and the
start of stage 2 (``models:/NAME/VERSION`` or ``runs:/RUN_ID/model``), on a real SQLite
store with its model registry."""

from __future__ import annotations

from dataclasses import replace

import mlflow
import numpy as np
import pytest
import torch
from mlflow import MlflowClient
from tracehelp import load_examples, load_trace, scratch_store, small_config

from soi_mlflow.analysis import soi_table
from soi_mlflow.data.batching import Collator, loader_view
from soi_mlflow.data.mixture import Mixture
from soi_mlflow.data.tokenize import tokenize
from soi_mlflow.errors import SoiInputError
from soi_mlflow.studies import two_stage
from soi_mlflow.studies.two_stage import Selection, TwoStageSettings
from soi_mlflow.training import TrainConfig, build_model, train

NAME = "soi-stage1"
pytestmark = pytest.mark.e2e


def _config(uri: str, **kw) -> TrainConfig:
    """Two task heads of different widths (2 and 3 labels), one of them on text pairs."""
    return small_config(
        uri,
        ("sentiment", "entailment"),
        axis="task",
        max_examples=40,
        eval_max_examples=20,
        **{"epochs": 1, "experiment": "models", "log_model": True, **kw},
    )


@pytest.fixture(scope="module")
def stage1(tmp_path_factory):
    with scratch_store(tmp_path_factory, "models") as uri:
        result = train(_config(uri, register_as=NAME))
        yield uri, result


def _load(model_uri: str, tracking_uri: str):
    """Load a pyfunc model as a user who names the store by the environment variable does."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", tracking_uri)
        return mlflow.pyfunc.load_model(model_uri)


def _inputs(examples):
    frame = examples[["text", "text_pair"]].copy()
    frame["task"] = examples["member"].astype(str)  # on the task axis, member = task
    return frame


def test_the_logged_model_predicts_what_training_recorded(stage1, monkeypatch) -> None:
    uri, result = stage1
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")  # pickle refused
    examples = load_examples(uri, result.run_id, "validation")
    trace, _ = load_trace(uri, result.run_id, "traces/validation/epoch=000.parquet")
    model = _load(f"runs:/{result.run_id}/model", uri)
    out = model.predict(_inputs(examples))
    registered = _load(f"models:/{NAME}/1", uri).predict(_inputs(examples))
    assert len(out) == len(examples) == len(trace) == 40
    assert set(examples["text_pair"].dropna()) and examples["text_pair"].isna().any()
    # the final epoch's evaluation pass ran on the final weights: same predictions
    traced = trace.set_index("example_id").loc[examples["example_id"]]
    np.testing.assert_array_equal(out["pred"].to_numpy(), traced["pred"].to_numpy())
    p_gold = [probs[gold] for probs, gold in zip(out["probs"], examples["label"], strict=True)]
    # (the trace keeps 12 mantissa bits: relative error <= 2**-13)
    np.testing.assert_allclose(p_gold, traced["p_gold"].to_numpy(), rtol=2**-12)
    widths = out.groupby("task")["logits"].agg(lambda v: {len(x) for x in v})
    assert widths.to_dict() == {"entailment": {3}, "sentiment": {2}}
    names = Mixture(_config(uri).mixture).tasks
    assert all(
        label == names[task][pred]
        for task, pred, label in zip(out["task"], out["pred"], out["label"], strict=True)
    )
    assert registered.equals(out)


def test_the_logged_model_gives_the_training_modules_logits(stage1) -> None:
    """The served logits equal the trained module's own forward pass (its batching)."""
    uri, result = stage1
    config = _config(uri)
    mixture = Mixture(config.mixture)
    _, tokenizer = build_model(replace(config, init_from=f"runs:/{result.run_id}/model"), mixture)
    model = _load(f"runs:/{result.run_id}/model", uri)
    module = result.module.eval()
    for member in config.mixture.members:
        rows = mixture.eval_set("validation", member)
        ds = loader_view(tokenize(rows, tokenizer, config.max_length))
        batch = Collator(tokenizer.pad_token_id)([ds[i] for i in range(len(ds))])
        with torch.no_grad():
            _, expected = module.per_example(module.encode(batch), batch, with_trace=True)
        out = model.predict(_inputs(rows.to_pandas()))
        width = len(mixture.tasks[member])
        served = np.array(out["logits"].tolist())
        assert served.shape == (len(rows), width)
        np.testing.assert_allclose(served, expected[:, :width].numpy(), atol=1e-5)


def test_the_model_is_code_and_safetensors_with_a_signature(stage1) -> None:
    uri, result = stage1
    client = MlflowClient(uri)
    version = client.get_model_version(NAME, "1")
    assert version.run_id == result.run_id and version.status == "READY"
    # MLflow resolves runs:/.../model and models:/ through the global URI only
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        info = mlflow.models.get_model_info(f"models:/{NAME}/1")
        files = mlflow.artifacts.list_artifacts(f"runs:/{result.run_id}/model")
        weights = mlflow.artifacts.list_artifacts(
            f"runs:/{result.run_id}/model/artifacts/checkpoint"
        )
    flavor = info.flavors["python_function"]
    assert flavor["loader_module"] == "mlflow.pyfunc.loaders.code_model"
    assert "python_model" not in flavor  # no cloudpickled model object
    paths = {f.path.rsplit("/", 1)[-1] for f in files}
    assert "pyfunc_model.py" in paths and not any(p.endswith((".pkl", ".pt")) for p in paths)
    assert {w.path.rsplit("/", 1)[-1] for w in weights} >= {"heads.safetensors", "tasks.json"}
    assert info.signature.inputs.input_names() == ["text", "text_pair", "task"]
    assert info.saved_input_example_info is not None
    run = client.get_run(result.run_id)
    assert [m.model_id for m in run.outputs.model_outputs] == [info.model_id]
    logged = client.get_logged_model(info.model_id)
    assert logged.experiment_id == result.experiment_id and str(logged.status) == "READY"
    assert {"val/sentiment/acc", "val/entailment/acc"} <= {m.key for m in logged.metrics}
    assert len(client.get_metric_history(result.run_id, "val/sentiment/acc")) == 1  # 1 epoch
    note = run.data.tags["mlflow.note.content"]
    assert 'load_model("runs:/<run id>/model")' in note and "registered as soi" in note


def test_stage2_starts_from_a_registered_model(stage1, tmp_path, monkeypatch) -> None:
    uri, result = stage1
    # the registered and the run's model hold exactly the final stage-1 weights
    trained = result.module.state_dict()
    for source in (f"models:/{NAME}/1", f"runs:/{result.run_id}/model"):
        config = replace(_config(uri), init_from=source)
        module, _ = build_model(config, Mixture(config.mixture))
        loaded = module.state_dict()
        assert trained.keys() == loaded.keys()
        assert all(torch.equal(t, loaded[k]) for k, t in trained.items()), source
    monkeypatch.chdir(tmp_path)
    selection = Selection(metric="variability", fraction=0.25)
    settings = TwoStageSettings.of(selection, 1, stage1_model=f"models:/{NAME}/1")
    out = two_stage.run(_config(uri, log_model=False), settings)
    assert out.stage1_run_id == result.run_id
    expected = set(selection.select(soi_table(result.run_id, tracking_uri=uri)))
    trace, _ = load_trace(uri, out.stage2_run_id, "traces/train/epoch=000.parquet")
    assert set(trace["example_id"]) == expected and len(expected) == 20
    run = MlflowClient(uri).get_run(out.stage2_run_id)
    assert run.data.params["init_from"] == f"models:/{NAME}/1"
    assert run.data.tags["soi.stage1_run_id"] == result.run_id
    assert "continued from the model models:/soi" in run.data.tags["mlflow.note.content"]
    versions = MlflowClient(uri).search_model_versions(f"name='{NAME}'")
    assert [str(v.version) for v in versions] == ["1"]  # stage 2 and control: not registered


def test_bad_model_settings_fail_before_any_work(stage1) -> None:
    uri, result = stage1
    runs_before = len(MlflowClient(uri).search_runs([result.experiment_id]))
    for settings, pattern in (
        ({"register_as": "team/model"}, "not a valid registered model name"),
        ({"register_as": " "}, "registered model name is empty"),
        ({"register_as": NAME, "log_model": False}, "register-as needs the logged model"),
        ({"init_from": "runs:/abc"}, "expected runs:/RUN_ID/model"),
        ({"init_from": "models:/no-such-model/1"}, "cannot find model 'models:/no-such-model/1'"),
    ):
        with pytest.raises(SoiInputError, match=pattern):
            train(_config(uri, **settings))
    with pytest.raises(SoiInputError, match="stage1-run-id or stage1-model, not both"):
        two_stage.run(
            _config(uri),
            TwoStageSettings(
                stage2_region="ambiguous", stage1_run_id="x", stage1_model=f"models:/{NAME}/1"
            ),
        )
    with pytest.raises(SoiInputError, match="cannot find model"):
        two_stage.run(
            _config(uri), TwoStageSettings(stage2_region="ambiguous", stage1_model="models:/nope/3")
        )
    assert len(MlflowClient(uri).search_runs([result.experiment_id])) == runs_before
