"""The interactive pages as strings: data escaped, JSON that round-trips, samples said."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from soi_mlflow.analysis.html import data_map_html, script_json, transitions_html
from soi_mlflow.analysis.soi import DEFAULT

HOSTILE = "</script><img src=x onerror=alert(1)> & \u2028\u2029 <!-- <script>"
BIG_ID = 1568749144305041861  # above 2**53: a JavaScript number would round it


def _tables(n: int = 40) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(1)
    subsets = DEFAULT.subsets
    ids = np.int64(BIG_ID) + np.arange(n, dtype=np.int64)
    members = np.where(np.arange(n) % 2, "books", "movies")
    table = pd.DataFrame(
        {
            "example_id": ids,
            "member": members,
            "soi": pd.Categorical(
                [subsets[i % len(subsets)] for i in range(n)], categories=subsets
            ),
            "confidence": rng.random(n),
            "variability": rng.random(n) * 0.4,
            "correctness": rng.random(n),
            "forgetting_events": rng.integers(0, 3, n),
        }
    )
    examples = pd.DataFrame(
        {
            "example_id": ids,
            "member": members,
            "text": [f"text {i}" for i in range(n)],
            "label": np.arange(n) % 2,
            "label_name": np.where(np.arange(n) % 2, "pos", "neg"),
            "planted": "clean",
        }
    )
    examples.loc[0, "text"] = HOSTILE
    examples.loc[1, "label_name"] = "<b>label</b>"
    table.loc[2, "member"] = '"><svg onload=alert(3)>'
    return table, examples


PAGE_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "div", "script"}


def _markup(page: str) -> set[str]:
    """The element names of a page; fails on any ``on...`` event attribute."""
    tags: set[str] = set()

    class Parser(HTMLParser):
        def handle_starttag(self, tag, attrs):
            tags.add(tag)
            assert not [a for a, _ in attrs if a.startswith("on")], (tag, attrs)

    Parser().feed(page)
    return tags


def _data(page: str) -> dict:
    found = re.search(r'<script type="application/json" id="soi-data">(.*?)</script>', page, re.S)
    assert found, "the page carries its data as one JSON script element"
    return json.loads(found.group(1))


def test_script_json_cannot_close_the_element_and_round_trips() -> None:
    value = {"t": HOSTILE, "n": float("nan"), "x": [1.5, float("inf")]}
    text = script_json(value)
    for raw in ("<", ">", "&", "\u2028", "\u2029"):
        assert raw not in text
    assert json.loads(text) == {"t": HOSTILE, "n": None, "x": [1.5, None]}


def test_data_map_escapes_everything_and_keeps_ids_exact() -> None:
    table, examples = _tables()
    page = data_map_html(table, title="map <i>of</i> " + HOSTILE, examples=examples)
    assert _markup(page) == PAGE_TAGS  # nothing from the data became an element
    assert "map &lt;i&gt;of&lt;/i&gt;" in page
    data = _data(page)
    cols = data["cols"]
    assert cols["id"][0] == str(BIG_ID) and cols["id"][-1] == str(BIG_ID + 39)
    assert cols["text"][0] == HOSTILE
    assert data["cats"]["member"][cols["member"][2]] == '"><svg onload=alert(3)>'
    assert data["cats"]["label"][cols["label"][1]] == "<b>label</b> (1)"
    assert data["total"] == data["shown"] == 40
    assert sum(data["counts"]["soi"].values()) == 40
    assert cols["x"][5] == pytest.approx(table["variability"][5], abs=1e-4)


def test_data_map_samples_large_tables_and_says_so() -> None:
    table, examples = _tables(500)
    data = _data(data_map_html(table, title="t", examples=examples, max_points=100))
    assert data["shown"] == len(data["cols"]["id"]) == 100 and data["total"] == 500
    assert sum(data["counts"]["soi"].values()) == 500  # the legend counts every example
    shown = {int(i) for i in data["cols"]["id"]}
    assert shown <= set(table["example_id"].tolist()) and len(shown) == 100


def test_data_map_csp_allows_only_its_own_script() -> None:
    import base64
    import hashlib

    page = data_map_html(*_tables()[:1], title="t")
    csp = re.search(r'Content-Security-Policy" content="([^"]+)"', page).group(1)
    assert "default-src 'none'" in csp
    code = page.rsplit("<script>", 1)[1].split("</script>", 1)[0]
    digest = base64.b64encode(hashlib.sha256(code.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in csp


def test_transitions_counts_and_lists_cells() -> None:
    table, examples = _tables(60)
    other = table.iloc[5:].copy()  # 5 examples only in A
    other["soi"] = pd.Categorical(["forgotten"] * len(other), categories=DEFAULT.subsets)
    page = transitions_html(
        table, other, title="t", label_a="single", label_b="multi", examples=examples, max_listed=3
    )
    data = _data(page)
    assert data["matched"] == 55 and data["only_a"] == 5 and data["only_b"] == 0
    counts = np.array(data["counts"])
    forgotten = data["subsets"].index("forgotten")
    expected = table.iloc[5:]["soi"].astype(str).value_counts()
    for name, n in expected.items():
        assert counts[data["subsets"].index(name), forgotten] == n
    assert counts.sum() == 55 and "unassigned" not in data["subsets"]
    cells = pd.Series(data["cols"]["cell"]).value_counts()
    assert (cells <= 3).all() and len(cells) == len(expected)
    assert _markup(page) == PAGE_TAGS
