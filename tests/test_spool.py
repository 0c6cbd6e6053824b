"""The upload spool (tracking/spool.py) against a real SQLite store: order, idempotent
re-sends, a crash's cut manifest line, an unreachable server, and ``soi-mlflow sync``."""

from __future__ import annotations

import json
import threading
import time

import pandas as pd
import pytest
from mlflow import MlflowClient
from servers import free_port

from soi_mlflow import cli
from soi_mlflow.errors import SoiInputError
from soi_mlflow.tracking import spool as spool_module
from soi_mlflow.tracking.recorder import TraceRecorder
from soi_mlflow.tracking.spool import MANIFEST, Spool, spooled_runs
from soi_mlflow.tracking.spool_writer import RETRY_ENV, SpoolWriter, retry_interval
from soi_mlflow.tracking.sync import SyncSettings, sync


def _run(uri: str) -> str:
    return MlflowClient(uri).create_run("0").info.run_id


def _fill(spool: Spool) -> None:
    frame = pd.DataFrame({"example_id": [3, 1, 2], "label": [0, 1, 0]})
    spool.put_artifact("train.parquet", "examples", lambda p: frame.to_parquet(p))
    spool.put_metrics({"train/loss": 0.7, "val/a/acc": 0.5}, step=0)
    spool.put_metrics({"train/loss": 0.4, "val/a/acc": 0.75}, step=1)
    spool.put_end("FINISHED")


def test_entries_reach_the_run_in_order_and_the_spool_goes(module_store, tmp_path):
    run_id = _run(module_store)
    spool = Spool(run_id, module_store)
    _fill(spool)
    assert [e["kind"] for e in spool.pending()] == ["artifact", "metrics", "metrics", "end"]
    assert run_id in spooled_runs()
    result = spool.send()
    assert (result.sent, result.pending) == (4, 0)
    assert not spool.folder.exists()
    client = MlflowClient(module_store)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    history = client.get_metric_history(run_id, "train/loss")
    assert sorted((m.step, m.value) for m in history) == [(0, 0.7), (1, 0.4)]
    assert "soi.heartbeat" in run.data.tags
    local = client.download_artifacts(run_id, "examples/train.parquet", str(tmp_path))
    assert pd.read_parquet(local)["example_id"].tolist() == [3, 1, 2]


def test_an_unreachable_server_keeps_everything_and_sync_sends_it_later(module_store, capsys):
    run_id = _run(module_store)
    dead = f"http://127.0.0.1:{free_port()}"
    spool = Spool(run_id, dead)
    _fill(spool)
    result = spool.send()
    assert (result.sent, result.pending) == (0, 4) and dead in result.error
    assert MlflowClient(module_store).get_run(run_id).info.status == "RUNNING"
    with pytest.raises(SoiInputError, match="does not answer: nothing was sent"):
        sync(SyncSettings(run_id=run_id))  # still down: a clear error, nothing lost
    assert len(Spool.of_run(run_id).pending()) == 4
    # the server moved: send to where the run now lives
    assert cli.main(["sync", "--run-id", run_id, "--tracking-uri", module_store]) == 0
    assert f"run {run_id}: sent 4 of 4 spooled entries" in capsys.readouterr().out
    assert MlflowClient(module_store).get_run(run_id).info.status == "FINISHED"
    assert cli.main(["sync"]) == 0
    assert "nothing to send" in capsys.readouterr().out


def test_a_crash_leaves_a_readable_spool(module_store):
    """A line cut by a crash is ignored; an entry sent but not marked is sent again and
    the store still holds one point per metric and step."""
    run_id = _run(module_store)
    spool = Spool(run_id, module_store)
    _fill(spool)
    client = MlflowClient(module_store)
    first = spool.pending()[1]
    spool._send_one(client, first)  # sent, then the process died before marking it
    with open(spool.folder / MANIFEST, "a") as f:
        f.write('{"seq": 9, "kind": "metr')  # the append a SIGKILL cut short
    assert [e["seq"] for e in spool.pending()] == [0, 1, 2, 3]
    assert spool.send().pending == 0
    history = client.get_metric_history(run_id, "val/a/acc")
    assert sorted((m.step, m.value) for m in history) == [(0, 0.5), (1, 0.75)]


def test_a_damaged_spool_is_named(module_store):
    run_id = _run(module_store)
    spool = Spool(run_id, module_store)
    _fill(spool)
    lines = (spool.folder / MANIFEST).read_text().splitlines()
    lines.insert(1, "not json")
    (spool.folder / MANIFEST).write_text("\n".join(lines) + "\n")
    with pytest.raises(SoiInputError, match=r"manifest.*line 2 is not JSON"):
        spool.pending()
    (spool.folder / MANIFEST).write_text(json.dumps({"seq": 0, "kind": "pickle"}) + "\n")
    with pytest.raises(SoiInputError, match="unknown kind 'pickle'"):
        spool.pending()
    with pytest.raises(SoiInputError, match="plain file name"):
        spool.put_artifact("../x.parquet", "examples", lambda p: None)


def test_the_writer_sends_on_a_timer_only_while_entries_wait() -> None:
    """Writes run in order on one thread; while ``waiting()`` says entries wait, a quiet
    writer calls ``retry()`` every interval, and never once nothing waits; shutdown runs
    what was queued and stops the thread. (tests/test_spool_server_e2e.py: a real server.)"""
    left = {"entries": 2}
    calls: list[float] = []

    def retry() -> None:
        calls.append(time.monotonic())
        left["entries"] -= 1

    writer = SpoolWriter(retry, lambda: left["entries"] > 0, interval=0.2, name="soi-test")
    assert writer.submit(lambda x: x + 1, 1).result(timeout=5) == 2
    deadline = time.monotonic() + 60  # two timer sends empty the "spool" (however busy
    while len(calls) < 2 and time.monotonic() < deadline:  # the machine); then it stops
        time.sleep(0.05)
    time.sleep(0.5)  # more than one interval: a third call would have come by now
    assert len(calls) == writer.retries == 2
    assert calls[1] - calls[0] > 0.15  # an interval apart, not one after the other
    failed = writer.submit(lambda: 1 / 0)
    assert isinstance(failed.exception(timeout=5), ZeroDivisionError)
    time.sleep(0.5)
    assert len(calls) == 2  # nothing waits: no timer
    late = writer.submit(time.sleep, 0.2)
    writer.shutdown()
    assert late.done() and not writer._thread.is_alive()
    assert "soi-test" not in [t.name for t in threading.enumerate()]
    with pytest.raises(RuntimeError, match="shut down"):
        writer.submit(print)


def test_a_bad_retry_interval_is_refused_before_a_run_opens(module_store, monkeypatch) -> None:
    client = MlflowClient(module_store)
    before = len(client.search_runs(["0"]))
    for value in ("0", "-1", "soon", "1e9"):
        monkeypatch.setenv(RETRY_ENV, value)
        with pytest.raises(SoiInputError, match=f"{RETRY_ENV}='{value}': expected a number"):
            TraceRecorder(tracking_uri=module_store)
    assert len(client.search_runs(["0"])) == before
    monkeypatch.setenv(RETRY_ENV, "2.5")
    assert retry_interval() == 2.5
    monkeypatch.delenv(RETRY_ENV)
    assert retry_interval() == 15.0


def test_the_names_that_moved_out_of_the_spool_module_still_import_from_it() -> None:
    import importlib

    for module, names in spool_module.MOVED.items():
        for name in names:
            assert getattr(spool_module, name) is getattr(importlib.import_module(module), name)
    assert spool_module.SyncSettings is SyncSettings and spool_module.sync is sync
    with pytest.raises(AttributeError):
        spool_module.not_a_name  # noqa: B018
