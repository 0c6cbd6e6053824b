"""find_runs against a real SQLite store: hostile tag values, and every page of results."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from mlflow import MlflowClient
from tracehelp import scratch_store

from soi_mlflow.analysis import find_runs
from soi_mlflow.errors import SoiInputError
from soi_mlflow.tracking.search import quote_value, tag_clause

HOSTILE = [
    "it's",
    'say "hi"',
    "both ' and \"",
    "both ' and ' \" again",
    "back\\slash ' \"",
    "100% _x_",
    "100% ax_",  # matches the LIKE pattern of the one above only through the wildcards
    "a`b",
    "plain",
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with scratch_store(tmp_path_factory, "search") as uri:
        yield uri


@pytest.fixture(scope="module")
def hostile_runs(store: str) -> dict[str, str]:
    client = MlflowClient(store)
    exp = client.create_experiment("search")
    ids = {}
    for value in HOSTILE:
        ids[value] = client.create_run(exp, tags={"soi.members": value}).info.run_id
    return ids


def test_every_tag_value_finds_exactly_its_run(store: str, hostile_runs: dict[str, str]) -> None:
    for value, run_id in hostile_runs.items():
        found = find_runs("search", tracking_uri=store, members=value)
        assert found["run_id"].tolist() == [run_id], value


def test_a_value_with_both_quotes_is_searched_as_a_superset_and_checked() -> None:
    assert quote_value("it's") == ("=", '"it\'s"')
    operator, literal = quote_value("a'b\"c\\d")
    assert operator == "LIKE" and literal == "'a_b_c_d'"
    with pytest.raises(SoiInputError, match="cannot be searched"):
        tag_clause("soi.x` = 'y", "z")


def test_find_runs_reads_every_page(store: str, hostile_runs: dict[str, str]) -> None:
    client = MlflowClient(store)
    exp = client.get_experiment_by_name("search").experiment_id
    first_page = client.search_runs([exp], max_results=2)
    assert len(first_page) == 2 and first_page.token  # the store does page at this size
    found = find_runs("search", tracking_uri=store, page_size=2)
    assert sorted(found["run_id"]) == sorted(hostile_runs.values())
    both = find_runs("search", "attributes.status = 'RUNNING'", store, page_size=2)
    assert len(both) == len(HOSTILE)
