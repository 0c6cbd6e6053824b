"""Known answers of #25 section 5 on a real transfer study of the transfer probes (books,
skewed, decoy; docs/studies.md "Known answers on the built-in suite"). One study (~70 s
here) serves both tests: the decoy's answers hold at this size, the skewed domain's do not
(its test is an xfail with the numbers measured)."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest
from tracehelp import scratch_store, small_config

from soi_mlflow.analysis.runs import cache_for
from soi_mlflow.studies import transfer
from soi_mlflow.studies.transfer import TransferSettings

pytestmark = pytest.mark.e2e

MEMBERS = ("books", "skewed", "decoy")
# The smallest setting found where books alone converges (so the extra steps of joint
# training do not pass for transfer) and the skew still has ambiguous examples to move.
SUITE = "builtin:\n  transfer_probes: true\n  ambiguous_rate: 0.3\n"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    with scratch_store(tmp_path_factory, "probes") as uri:
        suite = tmp_path_factory.mktemp("suite") / "probes.yaml"
        suite.write_text(SUITE, encoding="utf-8")
        config = small_config(uri, MEMBERS, max_examples=100, eval_max_examples=200)
        config = replace(
            config,
            epochs=10,
            lr=0.003,
            experiment="probes",
            mixture=replace(config.mixture, suite=str(suite)),
        )
        result = transfer.run(config, TransferSettings(seeds=3))
        cache = cache_for(uri)

        def table(name: str) -> pd.DataFrame:
            return pd.read_parquet(cache.file(result.parent_run_id, f"tables/{name}.parquet"))

        yield table


def _cell(frame: pd.DataFrame, source: str, target: str, **more) -> pd.Series:
    rows = frame[(frame["source"] == source) & (frame["target"] == target)]
    for column, value in more.items():
        rows = rows[rows[column] == value]
    assert len(rows) == 1, (source, target, more)
    return rows.iloc[0]


def test_the_decoy_is_the_most_similar_source_and_does_not_transfer(study) -> None:
    similarity = study("pair_similarity")
    top = similarity.sort_values("vocab_jaccard", ascending=False).iloc[0]
    assert {top["source"], top["target"]} == {"decoy", "books"}
    top = similarity.sort_values("tfidf_cosine", ascending=False).iloc[0]
    assert {top["source"], top["target"]} == {"decoy", "books"}
    cell = _cell(study("transfer_intervals"), "decoy", "books")
    assert cell["low"] <= 0.0 <= cell["high"], cell.to_dict()


@pytest.mark.xfail(
    strict=True,  # an XPASS fails: then the known answer holds and this mark must go
    reason="does not hold at this size (#25 section 5): skewed -> books moves books' "
    "predictions toward positive by +0.107, 95% interval over 3 seeds [-0.018, +0.231]; "
    "5 seeds at 80 examples/8 epochs: +0.081 [-0.059, +0.221]; 300 skewed examples, 5 "
    "seeds: +0.067 [-0.054, +0.188]; 95% positive: +0.100 [-0.093, +0.293]; skewed written "
    "in books' topic words: +0.137 [-0.126, +0.399], and at 95%: +0.133 [-0.147, +0.414]; "
    "in every design seed 2 moves by "
    "+0.015 to +0.055 only; at this setting, books and skewed alone, 8 seeds: +0.077 "
    "[+0.010, +0.144], but seed 4 moves by -0.055 and 5 or 7 seeds include 0 "
    "(docs/studies.md)",
)
def test_the_skewed_source_shifts_books_toward_positive_for_its_class_balance(study) -> None:
    shift = _cell(study("side_effects_prediction_shift"), "skewed", "books", pred="positive")
    assert shift["low"] > 0.0, shift.to_dict()
    # "class distribution among the top factors" cannot be asked of 3 members: 6 pairs,
    # and the factor table ranks from 12 (docs/studies.md, "Known answers")
