"""The example scripts run as a user runs them, each leaving one traced MLflow run that
the analysis reads. Three use the real pretrained MiniLM, ``hf_trainer_lora`` its default
tiny GPT-2 with LoRA built offline; all on fewer examples than their default
(``SOI_EXAMPLES_N``), one after the other in one child process (as a user's session would
run them; the libraries are imported once) to keep the suite fast."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient
from tracehelp import cli_env

from soi_mlflow.analysis.report import analyze_run

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = ("plain_loop", "hf_trainer", "lightning_module", "hf_trainer_lora")
N = 32  # training examples; validation gets 16

RUN_ALL = """
import runpy, sys
folder, scripts = sys.argv[1], sys.argv[2:]
sys.path.insert(0, folder)
for script in scripts:
    print(f"== {script}", flush=True)
    sys.argv = [f"{folder}/{script}.py"]  # as if run with its defaults
    runpy.run_path(sys.argv[0], run_name="__main__")
import gc; gc.freeze()  # exit as the soi-mlflow script does (bench/cli_exit.py): 2-5 s less
"""


@pytest.mark.e2e
@pytest.mark.timeout(900)  # the child's own 600 s timeout fires first, with its output
def test_each_example_leaves_one_run_with_a_trace_per_split_and_epoch(store, tmp_path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", RUN_ALL, str(EXAMPLES), *SCRIPTS],
        capture_output=True,
        text=True,
        env=cli_env(store) | {"SOI_EXAMPLES_N": str(N)},
        cwd=tmp_path,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    printed = {}
    for block in out.stdout.split("== ")[1:]:
        script, _, rest = block.partition("\n")
        found = re.findall(r"^run id: (\w+)$", rest, re.M)
        assert len(found) == 1, (script, rest[-500:])
        printed[script] = found[0]
    assert list(printed) == list(SCRIPTS)
    client = MlflowClient(store)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments)
    assert sorted(r.info.run_id for r in runs) == sorted(printed.values())  # one run each
    for run_id in printed.values():
        for split in ("train", "validation"):
            files = [a.path for a in client.list_artifacts(run_id, f"traces/{split}")]
            names = [f.rsplit("/", 1)[1] for f in files]
            assert names == ["epoch=000.parquet", "epoch=001.parquet"]
        tables = analyze_run(run_id, ["train", "validation"], tracking_uri=store)
        assert len(tables["train"]) == N and len(tables["validation"]) == N // 2
        figures = {a.path for a in client.list_artifacts(run_id, "figures")}
        assert "figures/datamap_train.png" in figures
