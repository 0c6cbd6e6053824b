"""The analysis a training ends with (``analysis/after_training.py``), through the
framework-free recorder: what it logs, what it skips, and that a failure or an outage
never fails the run. The adapters and ``train()`` are covered in their own test files."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from mlflow import MlflowClient

from soi_mlflow import TraceRecorder
from soi_mlflow.analysis.after_training import analyze_after_training
from soi_mlflow.tracking.spool import Spool

IDS = np.arange(40)

# a user's script: record two epochs, close, and report what closing changed in the process
STATE_SCRIPT = """
import json, logging, os, random, sys, warnings
import numpy as np
import pytest
import matplotlib, mlflow
from soi_mlflow import TraceRecorder

def state():
    loggers = {{n: (g.level, len(g.handlers), g.propagate)
               for n, g in logging.root.manager.loggerDict.items()
               if isinstance(g, logging.Logger)}}
    loggers["<root>"] = (logging.root.level, len(logging.root.handlers), True)
    pyplot = sys.modules.get("matplotlib.pyplot")
    torch = sys.modules.get("torch")
    return {{
        "environ": dict(os.environ),
        "tracking_uri": mlflow.get_tracking_uri(),
        "active_run": repr(mlflow.active_run()),
        "rcParams": {{k: repr(matplotlib.rcParams._get(k)) for k in matplotlib.rcParams}},
        "pyplot_figures": pyplot.get_fignums() if pyplot else None,
        "warnings_filters": [repr(f) for f in warnings.filters],
        "loggers": loggers,
        "numpy_rng": repr(np.random.get_state()),
        "random": repr(random.getstate()),
        "torch_rng": torch.random.get_rng_state().tolist() if torch else None,
    }}

rec = TraceRecorder(tracking_uri={uri!r}, label_names=["a", "b"], experiment="state")
ids = np.arange(40)
rng = np.random.default_rng(0)
for epoch in range(2):
    rec.add("train", ids, rng.normal(size=(40, 2)), ids % 2)
    rec.add("validation", ids[:10], rng.normal(size=(10, 2)), ids[:10] % 2)
    rec.end_epoch()
before = state()
rec.close()
after = state()
changed = sorted(k for k in before if k != "loggers" and before[k] != after[k])
changed += [f"logger {{n}}" for n, v in before["loggers"].items() if after["loggers"][n] != v]
print(json.dumps({{"run_id": rec.run_id, "analysed": rec.analysis.analysed, "changed": changed}}))
"""


def _record(uri: str, epochs: int, **kwargs) -> TraceRecorder:
    """A recorder that traced ``train`` and ``validation`` for ``epochs`` epochs."""
    rec = TraceRecorder(tracking_uri=uri, label_names=["a", "b"], **kwargs)
    rng = np.random.default_rng(1)
    for _ in range(epochs):
        rec.add("train", IDS, rng.normal(size=(len(IDS), 2)), IDS % 2)
        rec.add("validation", IDS[:10], rng.normal(size=(10, 2)), IDS[:10] % 2)
        rec.end_epoch()
    return rec


def _artifacts(client: MlflowClient, run_id: str) -> set[str]:
    return {
        a.path
        for folder in ("tables", "html", "figures")
        for a in client.list_artifacts(run_id, folder)
    }


@pytest.mark.e2e
def test_closing_the_recorder_analyses_and_leaves_the_process_as_it_was(
    module_store, tmp_path
) -> None:
    script = STATE_SCRIPT.format(uri=module_store)
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["changed"] == [], f"closing the recorder changed the process: {out['changed']}"
    assert out["analysed"] == ["train", "validation"]
    assert "analysed train, validation" in proc.stderr  # one line says where to look
    client = MlflowClient(module_store)
    run = client.get_run(out["run_id"])
    assert run.info.status == "FINISHED"
    fracs = [k for k in run.data.metrics if k.startswith("soi/train/") and k.endswith("_frac")]
    assert fracs and "soi/validation/coverage" in run.data.metrics
    assert {
        "tables/soi_train.parquet",
        "tables/soi_fractions_train.json",
        "html/datamap_train.html",
        "html/datamap_validation.html",
        "figures/datamap_train.png",
    } <= _artifacts(client, out["run_id"])
    note = run.data.tags["mlflow.note.content"]
    assert "#### Analysis" in note and "html/datamap_validation.html" in note


def test_analyze_off_leaves_the_run_as_traced(module_store) -> None:
    rec = _record(module_store, 2, analyze=False)
    rec.close()
    client = MlflowClient(module_store)
    run = client.get_run(rec.run_id)
    assert rec.analysis is None and run.info.status == "FINISHED"
    assert not [k for k in run.data.metrics if k.startswith("soi/")]
    assert _artifacts(client, rec.run_id) == set()
    assert "mlflow.note.content" not in run.data.tags


def test_one_epoch_is_not_analysed_and_the_description_says_why(module_store, capfd) -> None:
    rec = _record(module_store, 1)
    rec.close()
    client = MlflowClient(module_store)
    run = client.get_run(rec.run_id)
    assert run.info.status == "FINISHED"
    assert rec.analysis.analysed == [] and set(rec.analysis.skipped) == {"train", "validation"}
    assert _artifacts(client, rec.run_id) == set()
    note = run.data.tags["mlflow.note.content"]
    assert "#### Analysis" in note and "`train`: 1 epoch(s) traced, SOI needs 2" in note
    err = capfd.readouterr().err
    assert f"run {rec.run_id}: not analysed (train: 1 epoch(s) traced" in err


def test_a_failing_split_is_a_warning_and_the_run_stays_finished(
    module_store, tmp_path, capfd
) -> None:
    rec = _record(module_store, 2)
    rec.flush()
    bad = tmp_path / "epoch=002.parquet"
    bad.write_bytes(b"not parquet")  # a damaged trace file of the train split
    client = MlflowClient(module_store)
    client.log_artifact(rec.run_id, str(bad), "traces/train")
    rec.close()  # does not raise
    assert client.get_run(rec.run_id).info.status == "FINISHED"
    assert (
        rec.analysis.analysed == ["validation"]
        and "epoch=002.parquet" in rec.analysis.failed["train"]
    )
    assert "html/datamap_validation.html" in _artifacts(client, rec.run_id)
    assert "train failed: SoiInputError" in capfd.readouterr().err


def test_traces_still_in_the_spool_are_not_analysed(module_store) -> None:
    """While the server is away the run is incomplete: analysis waits for ``sync``."""
    rec = _record(module_store, 2, analyze=False)
    rec.close()
    Spool(rec.run_id, module_store).put_metrics({"late": 1.0}, 0)  # not sent: as in an outage
    outcome = analyze_after_training(rec.run_id, module_store, quiet=True)
    assert outcome.analysed == [] and "soi-mlflow sync" in outcome.skipped["run"]
    assert _artifacts(MlflowClient(module_store), rec.run_id) == set()
    Spool(rec.run_id, module_store).send()
    assert analyze_after_training(rec.run_id, module_store, quiet=True).analysed == [
        "train",
        "validation",
    ]
