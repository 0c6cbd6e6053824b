"""Runs with hand-made traces whose subsets of interest are known, logged to any store.

No training: each example's correctness per epoch is chosen so that it falls in one known
subset of the default taxonomy (4 epochs, split epoch 2). Texts may be hostile.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow import MlflowClient

from soi_mlflow.tracking.trace_format import build_table, write_trace

# correctness over 4 epochs -> the subset it must land in
PATTERNS = {
    "always_correct": (1, 1, 1, 1),
    "never_learned": (0, 0, 0, 0),
    "early_learned": (0, 1, 1, 1),
    "late_learned": (0, 0, 0, 1),
    "forgotten": (1, 0, 1, 0),
    "relearned": (1, 0, 0, 1),
}
HOSTILE = "</script><img src=x onerror=alert(1)> & \"quotes\" 'single' <b>bold</b>"


def plant_run(
    client: MlflowClient,
    experiment_id: str,
    members: tuple[str, ...] = ("books", "movies"),
    texts: dict[int, str] | None = None,
    name: str = "planted",
    parent_run_id: str | None = None,
) -> tuple[str, pd.DataFrame]:
    """A FINISHED run with train traces and an example table; returns its id and the
    expected table (example_id, member, soi, text)."""
    tags = {"mlflow.parentRunId": parent_run_id} if parent_run_id else {}
    run = client.create_run(experiment_id, run_name=name, tags=tags)
    rows = []
    for m, member in enumerate(members):
        for k, soi in enumerate(PATTERNS):
            eid = (m + 1) * 1000 + k
            text = (texts or {}).get(eid, f"{member} example {k}")
            rows.append(
                {
                    "example_id": eid,
                    "member": member,
                    "member_idx": m,
                    "soi": soi,
                    "text": text,
                    "label": 1,
                    "label_name": "pos",
                }
            )
    expected = pd.DataFrame(rows)
    # written to a folder removed once the store has its copy: nothing is left in /tmp
    with tempfile.TemporaryDirectory(prefix="planted-") as scratch:
        folder = Path(scratch)
        traces = folder / "traces"
        traces.mkdir()
        for epoch in range(4):
            correct = np.array([PATTERNS[s][epoch] for s in expected["soi"]])
            p_gold = np.where(correct == 1, 0.9, 0.1).astype(np.float32)
            columns = {
                "example_id": expected["example_id"].to_numpy(),
                "epoch": epoch,
                "step": np.full(len(expected), epoch * 10),
                "member_idx": expected["member_idx"].to_numpy(),
                "task_idx": np.zeros(len(expected), dtype=np.int32),
                "gold": np.ones(len(expected), dtype=np.int32),
                "pred": correct.astype(np.int32),
                "p_gold": p_gold,
                "loss": -np.log(p_gold),
            }
            table = build_table(columns, list(members), ["sentiment"])
            meta = {
                "run_id": run.info.run_id,
                "split": "train",
                "epoch": epoch,
                "capture": "train_pass",
                "axis": "source",
                "label_names": {"sentiment": ["neg", "pos"]},
            }
            write_trace(traces / f"epoch={epoch:03d}.parquet", table, meta)
        client.log_artifacts(run.info.run_id, str(traces), "traces/train")
        examples = expected[["example_id", "member", "text", "label", "label_name"]]
        ex_folder = folder / "examples"
        ex_folder.mkdir()
        examples.to_parquet(ex_folder / "train.parquet", index=False)
        client.log_artifacts(run.info.run_id, str(ex_folder), "examples")
    client.set_terminated(run.info.run_id)
    return run.info.run_id, expected[["example_id", "member", "soi", "text"]]
