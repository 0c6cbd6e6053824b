"""Member profiles, pair similarity and proxy transfer of a tiny real transfer study,
logged into its parent run by the study and again by its re-analysis."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
import pytest
from mlflow import MlflowClient
from tracehelp import small_config

from soi_mlflow.analysis.profiles import (
    PAIR_COLUMNS,
    PROFILE_COLUMNS,
    member_profiles,
)
from soi_mlflow.analysis.proxy_transfer import COLUMNS as PROXY_COLUMNS
from soi_mlflow.analysis.proxy_transfer import PROXY_TRANSFER, proxy_transfer
from soi_mlflow.analysis.run_factors import RUN_COLUMNS
from soi_mlflow.analysis.runs import cache_for
from soi_mlflow.data.mixture import Mixture
from soi_mlflow.studies import transfer
from soi_mlflow.studies.profiles import logged_config, mixture_examples
from soi_mlflow.studies.transfer import TransferSettings, reanalyze_transfer
from soi_mlflow.tracking import tags

MEMBERS = ("books", "movies", "electronics")


@pytest.mark.e2e
def test_transfer_study_logs_member_profiles_and_reanalysis_relogs_them(store) -> None:
    base = small_config(store, MEMBERS, max_examples=12, eval_max_examples=8)
    base = replace(base, epochs=1, experiment="profiles")
    result = transfer.run(base, TransferSettings())
    client = MlflowClient(store)
    parent = result.parent_run_id
    logged = {a.path for a in client.list_artifacts(parent, "tables")}
    for name in ("member_profiles", "class_shares", "pair_similarity", PROXY_TRANSFER):
        assert {f"tables/{name}.parquet", f"tables/{name}.json"} <= logged
    cache = cache_for(store)
    profiles = pd.read_parquet(cache.file(parent, "tables/member_profiles.parquet"))
    assert list(profiles.index) == list(MEMBERS)
    assert list(profiles.columns) == [*PROFILE_COLUMNS, *RUN_COLUMNS]
    assert (profiles["size"] == 12).all()
    # lengths in the tiny encoder's tokens: at least the words plus [CLS] and [SEP]
    words = member_profiles(mixture_examples(Mixture(base.mixture)))["tokens_mean"]
    assert (profiles["tokens_mean"] >= words + 2).all()
    alone = result.scores[result.scores["source"].isna()].set_index("target")["score"]
    assert profiles["difficulty_error"].to_dict() == pytest.approx((1 - alone).to_dict())
    assert profiles[["never_learned_share", "noise_share"]].notna().all().all()
    pairs = pd.read_parquet(cache.file(parent, "tables/pair_similarity.parquet"))
    assert len(pairs) == 6 and list(pairs.columns) == ["source", "target", *PAIR_COLUMNS]
    assert pairs["class_distribution_l1"].notna().all()  # one task: one shared head
    # the proxy transfer of the same training data, and a factor of the factor table
    proxy = pd.read_parquet(cache.file(parent, f"tables/{PROXY_TRANSFER}.parquet"))
    assert list(proxy.columns) == PROXY_COLUMNS and len(proxy) == 6
    assert proxy[PROXY_TRANSFER].notna().all()  # 12 examples a member: the least it takes
    expected = proxy_transfer(mixture_examples(Mixture(base.mixture)))
    pd.testing.assert_frame_equal(proxy, expected)
    factors = pd.read_parquet(cache.file(parent, "tables/transfer_pair_factors.parquet"))
    merged = factors.merge(proxy, on=["source", "target"], suffixes=("", "_table"))
    assert len(merged) == 6
    assert merged[PROXY_TRANSFER].to_numpy() == pytest.approx(
        merged[f"{PROXY_TRANSFER}_table"].to_numpy(), nan_ok=True
    )
    # the profiles are identified; only the factor correlations of 3 members (6 pairs)
    # are too small to tell (transfer_factors.py): against T, PC1 and PC2
    note = client.get_run(parent).data.tags["mlflow.note.content"]
    assert "member profiles" not in note and "too small to tell" in note
    identified_before = client.get_run(parent).data.tags[tags.NOT_IDENTIFIED]

    # re-analysis: the mixture comes back from the children's config.yaml
    run = client.get_run(parent)
    config = logged_config(cache, run, list(MEMBERS), list(result.scores["run_id"]))
    assert config is not None and config.mixture.members == MEMBERS
    assert config.mixture.max_examples == 12 and config.model == "tiny"
    # remove the logged tables from the (local) artifact store: re-analysis writes them back
    root = Path(urlparse(run.info.artifact_uri).path) / "tables"
    for name in ("member_profiles", "class_shares", "pair_similarity", PROXY_TRANSFER):
        (root / f"{name}.parquet").unlink()
    reanalyze_transfer(parent, store)
    assert client.get_run(parent).data.tags[tags.NOT_IDENTIFIED] == identified_before
    again = pd.read_parquet(root / "member_profiles.parquet")
    pd.testing.assert_frame_equal(again, profiles)
    assert len(pd.read_parquet(root / "pair_similarity.parquet")) == 6
    pd.testing.assert_frame_equal(pd.read_parquet(root / f"{PROXY_TRANSFER}.parquet"), proxy)
