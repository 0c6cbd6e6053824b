"""The Hugging Face Trainer integration: a real ``transformers.Trainer``, a real MLflow store."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
import torch
from mlflow import MlflowClient
from tracehelp import load_trace, trace_files
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
)

from soi_mlflow.data import load_member
from soi_mlflow.errors import SoiInputError
from soi_mlflow.model.tokenizer import train_wordpiece
from soi_mlflow.transformers import TraceCallback, TracingTrainer, eval_split_name

N_TRAIN, N_VAL, N_TEST = 64, 30, 20


@pytest.fixture(scope="module")
def data():
    """Built-in-suite splits as a user would have them: text, label, example_id, extras."""
    splits = {
        "train": load_member("builtin", "books", "train", max_examples=N_TRAIN),
        "validation": load_member("builtin", "books", "validation", max_examples=N_VAL),
        "test": load_member("builtin", "books", "test", max_examples=N_TEST),
    }
    tok = train_wordpiece(splits["train"]["text"], 500, 32)
    encoded = {
        k: v.map(lambda b: tok(b["text"], truncation=True, max_length=32), batched=True)
        for k, v in splits.items()
    }
    return encoded, tok


def tiny_model(names: list[str]) -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=500,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=len(names),
        id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)},
    )
    return BertForSequenceClassification(config)


def arguments(tmp_path, report_to, epochs: int = 2) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(tmp_path / "out"),
        num_train_epochs=epochs,
        per_device_train_batch_size=16,
        per_device_eval_batch_size=32,
        learning_rate=5e-3,
        eval_strategy="epoch",
        save_strategy="no",
        logging_strategy="epoch",
        report_to=report_to,
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )


@pytest.fixture
def hf_store(store, monkeypatch):
    """``store``, as transformers' MLflowCallback finds it: through the environment."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "hf-user")
    mlflow.set_tracking_uri(store)
    mlflow.set_experiment("hf-user")  # forget the previous test's experiment id
    yield store
    while mlflow.active_run():
        mlflow.end_run()


@pytest.mark.e2e
def test_report_to_mlflow_gives_one_run_with_complete_traces(data, hf_store, tmp_path) -> None:
    splits, tok = data
    names = splits["train"].features["label"].names
    model = tiny_model(names)
    trainer = TracingTrainer(  # remove_unused_columns is on (the default)
        model=model,
        args=arguments(tmp_path, ["mlflow"]),
        train_dataset=splits["train"],
        eval_dataset={"validation": splits["validation"], "test": splits["test"]},
        data_collator=DataCollatorWithPadding(tok),
    )
    trainer.train()
    client = MlflowClient(hf_store)
    runs = client.search_runs([client.get_experiment_by_name("hf-user").experiment_id])
    assert len(runs) == 1  # MLflowCallback's run holds the traces: one run, not two
    run = runs[0]
    run_id = run.info.run_id
    assert run.data.params["num_train_epochs"] == "2"  # logged by MLflowCallback
    assert "eval_validation_loss" in run.data.metrics and "val/default/acc" in run.data.metrics
    assert run.data.tags["soi.recorder"] == "transformers"
    assert run.data.tags["soi.capture"] == "train_pass"
    expected = {"train": N_TRAIN, "validation": N_VAL, "test": N_TEST}
    for split, n in expected.items():
        files = trace_files(hf_store, run_id, split)
        assert [f.rsplit("/", 1)[1] for f in files] == ["epoch=000.parquet", "epoch=001.parquet"]
        for epoch, path in enumerate(files):
            trace, meta = load_trace(hf_store, run_id, path)
            # every example exactly once per epoch
            assert sorted(trace["example_id"]) == sorted(splits[split]["example_id"])
            assert len(trace) == n and (trace["epoch"] == epoch).all()
            assert meta["capture"] == ("train_pass" if split == "train" else "eval_pass")
            assert meta["label_names"] == {"default": names}
    # the last validation trace holds the final model's own probabilities, row by row
    trace, _ = load_trace(hf_store, run_id, trace_files(hf_store, run_id, "validation")[-1])
    val = splits["validation"]
    batch = tok.pad({"input_ids": val["input_ids"]}, return_tensors="pt")
    model.eval()
    with torch.no_grad():
        probs = model(**batch).logits.softmax(-1).numpy()
    gold = np.asarray(val["label"])
    by_id = trace.set_index("example_id").loc[list(val["example_id"])]
    assert (by_id["gold"].to_numpy() == gold).all()
    assert (by_id["pred"].to_numpy() == probs.argmax(1)).all()
    np.testing.assert_allclose(by_id["p_gold"], probs[np.arange(len(gold)), gold], rtol=1e-3)


@pytest.mark.e2e
def test_without_mlflow_reporting_the_callback_starts_and_ends_its_run(
    data, hf_store, tmp_path
) -> None:
    splits, tok = data
    names = splits["train"].features["label"].names
    trainer = TracingTrainer(
        model=tiny_model(names),
        args=arguments(tmp_path, "none", epochs=1),
        train_dataset=splits["train"],
        eval_dataset=splits["validation"],
        data_collator=DataCollatorWithPadding(tok),
        callbacks=[TraceCallback(label_names=["neg", "pos"])],
    )
    trainer.train()
    run_id = trainer.trace_run_id
    run = MlflowClient(hf_store).get_run(run_id)
    assert run.info.status == "FINISHED" and mlflow.active_run() is None
    # the plain "eval" prefix is the validation split
    trace, meta = load_trace(hf_store, run_id, trace_files(hf_store, run_id, "validation")[0])
    assert len(trace) == N_VAL and meta["label_names"] == {"default": ["neg", "pos"]}
    assert len(trace_files(hf_store, run_id, "train")) == 1


@pytest.mark.e2e
def test_training_ends_with_the_analysis_unless_turned_off(data, hf_store, tmp_path) -> None:
    splits, tok = data
    names = splits["train"].features["label"].names
    client = MlflowClient(hf_store)
    for analyze in (True, False):
        callback = TraceCallback(analyze=analyze)
        trainer = TracingTrainer(
            model=tiny_model(names),
            args=arguments(tmp_path, "none", epochs=2),
            train_dataset=splits["train"],
            eval_dataset=splits["validation"],
            data_collator=DataCollatorWithPadding(tok),
            callbacks=[callback],
        )
        trainer.train()
        run = client.get_run(trainer.trace_run_id)
        assert run.info.status == "FINISHED" and mlflow.active_run() is None
        soi = [k for k in run.data.metrics if k.startswith("soi/")]
        run_id = run.info.run_id
        found = {a.path for d in ("tables", "html") for a in client.list_artifacts(run_id, d)}
        note = run.data.tags.get("mlflow.note.content", "")
        if analyze:
            assert callback.analysis.analysed == ["train", "validation"]
            assert "soi/train/forgotten_frac" in soi and "soi/validation/coverage" in soi
            assert {"tables/soi_train.parquet", "html/datamap_train.html"} <= found
            assert "#### Analysis" in note and "html/datamap_validation.html" in note
        else:
            assert callback.analysis is None and soi == [] and found == set() and note == ""


@pytest.mark.e2e
def test_a_plain_trainer_or_missing_ids_fail_clearly_at_the_first_batch(
    data, hf_store, tmp_path
) -> None:
    splits, tok = data
    names = splits["train"].features["label"].names
    callback = TraceCallback()
    plain = Trainer(  # the callback alone never sees the logits
        model=tiny_model(names),
        args=arguments(tmp_path, "none", epochs=1),
        train_dataset=splits["train"],
        eval_dataset=splits["validation"],
        data_collator=DataCollatorWithPadding(tok),
        callbacks=[callback],
    )
    with pytest.raises(SoiInputError, match="saw no training batch: train with TracingTrainer"):
        plain.train()
    assert plain.state.global_step == 1
    assert MlflowClient(hf_store).get_run(callback.run_id).info.status == "FAILED"
    assert mlflow.active_run() is None
    no_ids = TracingTrainer(
        model=tiny_model(names),
        args=arguments(tmp_path, "none", epochs=1),
        train_dataset=splits["train"].remove_columns("example_id"),
        eval_dataset=splits["validation"],
        data_collator=DataCollatorWithPadding(tok),
    )
    with pytest.raises(SoiInputError, match="no 'example_id' column"):
        no_ids.train()
    assert no_ids.state.global_step == 0


def test_evaluation_prefixes_name_the_splits() -> None:
    assert eval_split_name("eval") == "validation"
    assert eval_split_name("eval", "dev") == "dev"
    assert eval_split_name("eval_ood_news") == "ood_news"
    assert eval_split_name("test") == "test"


def test_key_options_share_lightnings_names_and_the_old_ones_warn() -> None:
    import warnings

    from soi_mlflow.lightning import TraceCallback as LightningCallback

    new = TraceCallback(ids="uid", labels="y", logits="scores", member="src", members=["a"])
    light = LightningCallback(ids="uid", labels="y", logits="scores", member="src")
    assert (new.ids_key, new.labels_key, new.logits_key, new.member_key) == (
        "uid",
        "y",
        "scores",
        "src",
    )
    assert light.keys == {"ids": "uid", "labels": "y", "logits": "scores"}
    assert light.member_key == new.member_key
    with warnings.catch_warnings():  # the defaults (and the new names) warn nothing
        warnings.simplefilter("error")
        default = TraceCallback()
        TraceCallback(ids="uid")
    assert (default.ids_key, default.labels_key, default.logits_key) == (
        "example_id",
        "labels",
        "logits",
    )
    assert type(default.ids_key) is str and default.member_key is None
    with pytest.warns(DeprecationWarning, match=r"_key=\.\.\.\) is deprecated; use") as caught:
        old = TraceCallback(
            ids_key="uid", labels_key="y", logits_key="scores", member_key="src", members=["a"]
        )
    assert [str(w.message).split("(")[1].split("=")[0] for w in caught] == [
        f"{k}_key" for k in ("ids", "labels", "logits", "member")
    ]
    assert {w.filename for w in caught} == {__file__}  # they point at the caller's line
    assert (old.ids_key, old.labels_key, old.logits_key, old.member_key) == (
        "uid",
        "y",
        "scores",
        "src",
    )
    with pytest.raises(SoiInputError, match="ids_key= is the old name of ids=; pass only ids="):
        TraceCallback(ids="uid", ids_key="other")
    with pytest.raises(SoiInputError, match="old name of member="):
        TraceCallback(member="src", member_key="src", members=["a"])
    with pytest.raises(TypeError, match="unexpected keyword argument 'idz'"):
        TraceCallback(idz="uid")
    with pytest.raises(SoiInputError, match="member needs members="):
        TraceCallback(member="src")


def _args_section(cls: type) -> list[str]:
    """The argument names a class's docstring lists under ``Args:``, in order."""
    import inspect
    import re

    doc = inspect.getdoc(cls) or ""
    section = doc.split("\nArgs:\n", 1)[1].split("\n\n", 1)[0]
    return re.findall(r"^    (\w+):", section, re.M)


def test_both_trace_callbacks_take_the_same_arguments_in_the_same_order() -> None:
    """One spelling for both frameworks: the transformers callback's arguments are the
    Lightning callback's (same names, order, kinds and defaults), each documented."""
    import inspect

    from soi_mlflow.lightning import TraceCallback as LightningCallback

    def params(cls: type) -> dict[str, inspect.Parameter]:
        found = inspect.signature(cls).parameters.items()
        return {n: p for n, p in found if p.kind is not p.VAR_KEYWORD}

    hf, light = params(TraceCallback), params(LightningCallback)
    assert [n for n in light if n in hf] == list(hf), "every argument is Lightning's, in order"
    for name, param in hf.items():
        other = light[name]
        assert (param.kind, str(param.default)) == (other.kind, str(other.default)), name
        if name != "run_id":  # Lightning's also takes a function called on rank 0
            assert param.annotation == other.annotation, name
    assert [n for n, p in light.items() if p.kind is not p.KEYWORD_ONLY] == ["label_names"]
    assert _args_section(TraceCallback) == list(hf)
    assert _args_section(LightningCallback) == list(light)
    for cls in (TraceCallback, LightningCallback, TracingTrainer):
        doc = inspect.getdoc(cls) or ""
        assert "\nRaises:\n" in doc and "\nExample::\n" in doc, cls


def test_eval_splits_is_one_name_or_a_list_and_the_old_spelling_warns() -> None:
    from soi_mlflow.lightning import TraceCallback as LightningCallback

    assert TraceCallback(["neg", "pos"]).label_names == ["neg", "pos"]
    assert LightningCallback(["neg", "pos"]).label_names == ["neg", "pos"]
    assert TraceCallback(eval_splits="dev").eval_splits == ["dev"]
    assert TraceCallback(eval_splits=["dev"]).eval_splits == ["dev"]
    assert TraceCallback().eval_splits == ["validation"]
    assert LightningCallback(eval_splits="dev").eval_splits == ["dev"]
    assert LightningCallback(eval_splits=["dev", "ood"]).eval_splits == ["dev", "ood"]
    with pytest.warns(DeprecationWarning, match=r"eval_split=\.\.\.\) is deprecated; use eval_"):
        old = TraceCallback(eval_split="dev")
    old.begin_eval("eval")  # what TraceMixin calls as an unnamed evaluation starts
    assert old.eval_splits == ["dev"] and old._split == "dev"
    with pytest.raises(SoiInputError, match="one evaluation set without a name"):
        TraceCallback(eval_splits=["dev", "ood"])
    for cls in (TraceCallback, LightningCallback):
        with pytest.raises(SoiInputError, match="split name 'a/b'"):
            cls(eval_splits="a/b")
        with pytest.raises(TypeError):
            cls(["neg", "pos"], "example_id")  # only label_names is positional
