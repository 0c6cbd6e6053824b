"""Helpers for tests that read runs back (the analysis package has the real readers)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
from mlflow import MlflowClient
from mlflow.artifacts import download_artifacts

from soi_mlflow.tracking.trace_format import read_metadata, read_trace


def trace_files(uri: str, run_id: str, split: str) -> list[str]:
    client = MlflowClient(uri)
    return sorted(a.path for a in client.list_artifacts(run_id, f"traces/{split}"))


def load_trace(uri: str, run_id: str, path: str) -> tuple[pd.DataFrame, dict]:
    local = download_artifacts(
        run_id=run_id, artifact_path=path, tracking_uri=uri, dst_path=tempfile.mkdtemp()
    )
    return read_trace(local), read_metadata(local)


def load_examples(uri: str, run_id: str, split: str) -> pd.DataFrame:
    local = download_artifacts(
        run_id=run_id,
        artifact_path=f"examples/{split}.parquet",
        tracking_uri=uri,
        dst_path=tempfile.mkdtemp(),
    )
    return pd.read_parquet(Path(local))
