"""Searching runs by tag values that come from data, through every page of results.

MLflow's filter language quotes a value with ``'`` or ``"`` and has no escape character,
so a value holding both quote kinds cannot be written as an equality. Such a value is
searched with ``LIKE``, each quote and backslash replaced by the one-character wildcard
``_`` (PostgreSQL's ``LIKE`` treats backslash as its escape), which finds a superset; every
run found is then checked for exact equality here, so the answer is always exact.

Results are read page by page until the store has no next page: no silent cap.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from soi_mlflow.errors import SoiInputError

PAGE_SIZE = 1000  # MLflow's default page; servers accept up to 50,000
_KEY = re.compile(r"[A-Za-z0-9_.\-/ :]+")


def quote_value(value: str) -> tuple[str, str]:
    """``(operator, quoted literal)`` that matches ``value`` exactly, or a ``LIKE``
    superset when ``value`` holds both quote kinds (see the module docstring)."""
    value = str(value)
    if "'" not in value:
        return "=", f"'{value}'"
    if '"' not in value:
        return "=", f'"{value}"'
    pattern = re.sub(r"['\"\\]", "_", value)
    return "LIKE", f"'{pattern}'"


def tag_clause(key: str, value: str) -> str:
    """A filter clause ``tags.`key` = 'value'`` with ``value`` safely quoted."""
    if not _KEY.fullmatch(key):
        raise SoiInputError(f"tag name {key!r} cannot be searched (letters, digits, _.-/: only)")
    operator, literal = quote_value(value)
    return f"tags.`{key}` {operator} {literal}"


def search_all(
    client: Any,
    experiment_ids: Iterable[str],
    filter_string: str | None = None,
    tags: Mapping[str, str] | None = None,
    page_size: int = PAGE_SIZE,
) -> Iterator[Any]:
    """Every run of ``experiment_ids`` matching ``filter_string`` and carrying exactly the
    ``tags`` given (full tag names), read through all pages of ``page_size`` runs."""
    tags = {k: str(v) for k, v in (tags or {}).items()}
    clauses = [filter_string] if filter_string else []  # MLflow filters are AND-only
    clauses += [tag_clause(k, v) for k, v in tags.items()]
    experiment_ids = list(experiment_ids)
    if not experiment_ids:
        return
    token = None
    while True:
        page = client.search_runs(
            experiment_ids, " and ".join(clauses), max_results=page_size, page_token=token
        )
        for run in page:
            if all(run.data.tags.get(k) == v for k, v in tags.items()):
                yield run
        token = page.token
        if not token:
            return


def all_experiment_ids(client: Any, page_size: int = PAGE_SIZE) -> list[str]:
    """The ids of every active experiment, read through all pages."""
    ids, token = [], None
    while True:
        page = client.search_experiments(max_results=page_size, page_token=token)
        ids += [e.experiment_id for e in page]
        token = page.token
        if not token:
            return ids
