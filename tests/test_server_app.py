"""The soi pages in a real ``mlflow server --app-name soi`` / ``soi-auth``, started here.

Runs are planted with known subsets and hostile texts (tests/plantruns.py); the pages are
read over HTTP as a browser would, and checked against the known answers.
"""

from __future__ import annotations

import base64
import io
import re
import secrets
import urllib.error
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import pandas as pd
import pytest
from mlflow import MlflowClient
from plantruns import HOSTILE, PATTERNS, plant_run
from servers import mlflow_server
from tracehelp import log_synthetic_run

from soi_mlflow.tracking.links import soi_pages_note

pytestmark = pytest.mark.e2e


def get(url: str, user: tuple[str, str] | None = None) -> tuple[int, Any, str]:
    """Status, headers and body of a GET (errors included), optionally with basic auth."""
    req = urllib.request.Request(url)
    if user:
        token = base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


class Tables(HTMLParser):
    """The text of every table cell, table by table (rows of cells)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def frame(table: list[list[str]]) -> pd.DataFrame:
    return pd.DataFrame(table[1:], columns=table[0]).set_index(table[0][0])


@pytest.fixture(scope="module")
def soi_server(tmp_path_factory) -> Iterator[tuple[str, dict]]:
    folder = tmp_path_factory.mktemp("soi-app")
    with mlflow_server(folder, app_name="soi") as uri:
        client = MlflowClient(uri)
        exp = client.create_experiment("soi-app")
        parent = client.create_run(exp, run_name="study").info.run_id
        a, expected = plant_run(client, exp, texts={1004: HOSTILE}, name="single")
        b, _ = plant_run(client, exp, name="multi <i>x</i>", parent_run_id=parent)
        c, _ = plant_run(client, exp, name="sibling", parent_run_id=parent)
        yield uri, {"a": a, "b": b, "c": c, "expected": expected}


def test_the_run_page_shows_the_known_subsets_and_escapes_texts(soi_server) -> None:
    uri, runs = soi_server
    status, headers, body = get(f"{uri}/soi/run?run_id={runs['a']}")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "script-src" not in headers["Content-Security-Policy"]  # no script may run
    counts = frame(Tables(body).tables[0])
    for soi in PATTERNS:
        assert counts.loc["books", soi] == "1" and counts.loc["movies", soi] == "1"
    assert counts.loc["All", "All"] == str(len(runs["expected"]))
    assert "<img src=x" not in body and "</script><img" not in body
    assert "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in body
    examples = frame(Tables(body).tables[1])
    assert HOSTILE in examples["text"].tolist()  # shown literally once parsed


def test_the_csv_holds_every_example_with_its_known_subset(soi_server) -> None:
    uri, runs = soi_server
    status, headers, body = get(f"{uri}/soi/table.csv?run_id={runs['a']}&split=train")
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    table = pd.read_csv(io.StringIO(body))
    merged = table.merge(runs["expected"], on="example_id", suffixes=("", "_known"))
    assert len(merged) == len(runs["expected"])
    assert (merged["soi"] == merged["soi_known"]).all()
    assert HOSTILE in table["text"].tolist()


def test_transitions_and_siblings_of_a_study_run(soi_server) -> None:
    uri, runs = soi_server
    status, _, body = get(f"{uri}/soi/run?run_id={runs['b']}")
    assert status == 200 and "sibling" in body and runs["c"] in body
    assert "multi &lt;i&gt;x&lt;/i&gt;" in body and "<i>x" not in body
    status, _, body = get(f"{uri}/soi/transitions?run_a={runs['a']}&run_b={runs['b']}")
    assert status == 200
    counts = frame(Tables(body).tables[0])
    n = len(runs["expected"]) // len(PATTERNS)
    for soi in PATTERNS:  # the same planted examples: everything on the diagonal
        assert counts.loc[soi, soi] == str(n)
    assert "12 examples in both runs" in body


@pytest.mark.parametrize(
    ("query", "status", "says"),
    [
        ("run?run_id=0123456789abcdef0123456789abcdef", 404, "no run"),
        ("run?run_id=../../etc/passwd", 400, "expected an MLflow run id"),
        ("run?run_id=%2Fetc%2Fpasswd", 400, "expected an MLflow run id"),
        ("run?split=..%2F..%2Fsecret&run_id={a}", 400, "split name"),
        ("table.csv?run_id={a}&split=examples%2F..", 400, "split name"),
        ("run", 400, "expected an MLflow run id"),
        ("transitions?run_a={a}", 400, "expected an MLflow run id"),
    ],
)
def test_bad_requests_are_refused_with_a_message(soi_server, query, status, says) -> None:
    uri, runs = soi_server
    code, headers, body = get(f"{uri}/soi/{query.format(a=runs['a'])}")
    assert code == status and says in body, body
    assert "root:" not in body and headers["Content-Type"].startswith("text/html")


def test_a_split_of_any_valid_name_is_served(soi_server) -> None:
    """The pages take a split by the recorder's rule, not from a list of four; a run id
    is taken by the rule the command line uses (surrounding blanks stripped)."""
    uri, _ = soi_server
    run = log_synthetic_run(uri, {1: [0, 1, 1], 2: [1, 1, 1], 3: [0, 0, 0]}, split="dev.news")
    status, _, body = get(f"{uri}/soi/table.csv?run_id=%20{run}%0A&split=dev.news")
    assert status == 200, body
    table = pd.read_csv(io.StringIO(body)).set_index("example_id")["soi"]
    assert table.to_dict() == {1: "early_learned", 2: "always_correct", 3: "never_learned"}
    status, _, body = get(f"{uri}/soi/run?run_id={run}&split=dev.news")
    assert status == 200 and "split dev.news" in body, body


def test_the_routes_are_read_only(soi_server) -> None:
    uri, runs = soi_server
    req = urllib.request.Request(f"{uri}/soi/run?run_id={runs['a']}", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=30)
    assert err.value.code == 405


# -- behind MLflow's basic authentication ------------------------------------------------

ADMIN = ("admin", "Adm1n-" + secrets.token_hex(8))
ALICE = ("alice", "Al1ce-" + secrets.token_hex(8))
BOB = ("bob", "B0b-" + secrets.token_hex(8))


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory) -> Iterator[tuple[str, dict]]:
    from mlflow.server.auth.client import AuthServiceClient

    folder = tmp_path_factory.mktemp("soi-auth")
    ini = folder / "auth.ini"
    ini.write_text(
        "[mlflow]\ndefault_permission = NO_PERMISSIONS\n"
        f"database_uri = sqlite:///{folder}/auth.db\nadmin_username = {ADMIN[0]}\n"
        f"admin_password = {ADMIN[1]}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    env = {"MLFLOW_AUTH_CONFIG_PATH": str(ini), "MLFLOW_FLASK_SERVER_SECRET_KEY": "k" * 32}
    with (
        mlflow_server(folder, app_name="soi-auth", env=env) as uri,
        pytest.MonkeyPatch.context() as mp,
    ):
        mp.setenv("MLFLOW_TRACKING_USERNAME", ADMIN[0])
        mp.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN[1])
        client = MlflowClient(uri)
        shared = client.create_experiment("shared")
        private = client.create_experiment("private")
        runs = {"shared": plant_run(client, shared)[0], "private": plant_run(client, private)[0]}
        users = AuthServiceClient(uri)
        for name, password in (ALICE, BOB):
            users.create_user(name, password)
        users.grant_user_permission(ALICE[0], "experiment", shared, "READ")
        yield uri, runs


def test_a_reader_of_the_experiment_sees_its_soi_pages(auth_server) -> None:
    uri, runs = auth_server
    for route in ("run?run_id={r}", "table.csv?run_id={r}", "transitions?run_a={r}&run_b={r}"):
        status, _, body = get(f"{uri}/soi/{route.format(r=runs['shared'])}", ALICE)
        assert status == 200, (route, body)
    status, _, body = get(f"{uri}/soi/run?run_id={runs['shared']}", ADMIN)
    assert status == 200 and "always_correct" in body


def test_others_are_refused(auth_server) -> None:
    uri, runs = auth_server
    shared, private = runs["shared"], runs["private"]
    for route in ("run?run_id={r}", "table.csv?run_id={r}", "transitions?run_a={r}&run_b={r}"):
        status, _, body = get(f"{uri}/soi/{route.format(r=shared)}", BOB)
        assert status == 403 and "always_correct" not in body
        assert get(f"{uri}/soi/{route.format(r=shared)}")[0] == 401  # no credentials
    # alice reads `shared` only: a pair with a run of `private` is refused as a whole
    assert get(f"{uri}/soi/transitions?run_a={shared}&run_b={private}", ALICE)[0] == 403
    assert get(f"{uri}/soi/run?run_id={private}", ALICE)[0] == 403
    # a run that does not exist is refused, not reported
    assert get(f"{uri}/soi/run?run_id={'0' * 32}", ALICE)[0] == 403


def test_the_interactive_pages_are_served_sandboxed(soi_server) -> None:
    uri, runs = soi_server
    status, headers, body = get(f"{uri}/soi/datamap?run_id={runs['a']}&split=train")
    assert status == 200 and headers["Content-Security-Policy"].startswith("sandbox allow-scripts")
    assert "application/json" in body and HOSTILE not in body and "<img src=x" not in body
    assert "1004" in body  # the hostile example is on the map, as data
    status, headers, body = get(f"{uri}/soi/heatmap?run_a={runs['a']}&run_b={runs['b']}")
    assert status == 200 and "sandbox" in headers["Content-Security-Policy"]
    assert "multi &lt;i&gt;x&lt;/i&gt;" in body or "multi \\u003ci\\u003e" in body
    assert "<i>x</i>" not in body


def test_the_description_link_opens_the_runs_page(soi_server) -> None:
    uri, runs = soi_server
    note = soi_pages_note(runs["a"])
    targets = re.findall(r"\]\(([^)]+)\)", note)
    assert len(targets) == 2
    for target in targets:  # relative to the UI's root, as the MLflow UI resolves them
        status, _, body = get(f"{uri}/{target}")
        assert status == 200 and (
            "Subsets of interest: single" in body or "Data map: single" in body
        )
