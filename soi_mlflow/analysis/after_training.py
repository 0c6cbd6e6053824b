"""The analysis a traced training ends with: what ``soi-mlflow analyze --run-id`` does.

``soi-mlflow train`` and the Lightning and transformers adapters call
:func:`analyze_after_training` once the run's traces are in the store, and so does every
``TraceRecorder`` that closes a run well (:func:`after_close`, the step
``soi_mlflow/__init__.py`` registers in ``tracking/after_close.py``), so a single training
shows its data map in the MLflow UI. Every split traced in at least
:data:`MIN_EPOCHS` epochs is analysed (``train`` first); the others are named with the
reason in the run's "Analysis" section.

It never fails a finished training: a split that cannot be analysed is skipped with its
reason, a failure becomes one warning line on stderr, and a run whose traces still wait in
the spool (the server is away) is left for ``soi-mlflow analyze`` after ``soi-mlflow sync``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

from soi_mlflow.analysis.runs import cache_for
from soi_mlflow.errors import first_line
from soi_mlflow.tracking.health import probe_http
from soi_mlflow.tracking.links import set_description_section
from soi_mlflow.tracking.names import in_split_order, listed_epoch
from soi_mlflow.tracking.spool import Spool

MIN_EPOCHS = 2  # SOI needs a before and an after: one epoch says nothing about forgetting


@dataclass
class AnalysisOutcome:
    """What :func:`analyze_after_training` did to a run."""

    run_id: str
    analysed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # split -> why not analysed
    failed: dict[str, str] = field(default_factory=dict)  # split (or "run") -> error line
    seconds: float = 0.0

    def summary(self) -> str:
        """One line for the terminal."""
        head = f"soi-mlflow: {'warning: ' if self.failed else ''}run {self.run_id}"
        if self.analysed:
            text = (
                f"{head}: analysed {', '.join(self.analysed)} in {self.seconds:.1f} s; open "
                f"html/datamap_{self.analysed[0]}.html in its Artifacts"
            )
        else:
            text = f"{head}: not analysed"
        return text + (f" ({'; '.join(self._notes())})" if self._notes() else "")

    def lines(self) -> list[str]:
        """Short lines for a command's output: what was analysed, where the data map is,
        what was not and why."""
        out = []
        if self.analysed:
            out.append(f"analysed: {', '.join(self.analysed)} ({self.seconds:.1f} s)")
            out.append(f"data map: html/datamap_{self.analysed[0]}.html in the run's Artifacts")
        out += [f"not analysed: {note}" for note in self._notes()]
        return out

    def _notes(self) -> list[str]:
        notes = [f"{s}: {why}" for s, why in self.skipped.items()]
        return notes + [f"{s} failed: {err}" for s, err in self.failed.items()]


def traced_epochs(client: object, run_id: str) -> dict[str, int]:
    """Per traced split of the run, its number of traced epochs (a trace file or a
    folder of shards each), in analysis order (:func:`in_split_order`)."""
    found = {}
    for folder in client.list_artifacts(run_id, "traces"):
        if folder.is_dir:
            files = client.list_artifacts(run_id, folder.path)
            epochs = {listed_epoch(a.path, a.is_dir) for a in files} - {None}
            found[folder.path.rsplit("/", 1)[-1]] = len(epochs)
    return {s: found[s] for s in in_split_order(found)}


def analyze_after_training(
    run_id: str, tracking_uri: str, *, quiet: bool = False
) -> AnalysisOutcome:
    """Analyse the splits of ``run_id`` traced in at least :data:`MIN_EPOCHS` epochs (SOI
    metrics, tables, figures, ``html/datamap_<split>.html``, the "Analysis" section of the
    description) and say in one line on stderr what was done; with ``quiet``, only if
    something failed (the caller reports the rest). Never raises an ``Exception``: what
    goes wrong is in the returned outcome."""
    start = time.perf_counter()
    out = AnalysisOutcome(run_id)
    try:
        _analyze(out, tracking_uri)
    except Exception as exc:  # noqa: BLE001 - a finished training must stay finished
        out.failed["run"] = first_line(exc)
    out.seconds = time.perf_counter() - start
    if not quiet or out.failed:
        print(out.summary(), file=sys.stderr, flush=True)
    return out


def _analyze(out: AnalysisOutcome, tracking_uri: str) -> None:
    from soi_mlflow.analysis.report import analysis_note, analyze_run  # deferred: matplotlib

    waiting = len(Spool(out.run_id, tracking_uri).pending())
    if waiting:
        out.skipped["run"] = (
            f"{waiting} spooled entries not in the store yet; after `soi-mlflow sync "
            f"--run-id {out.run_id}`, run `soi-mlflow analyze --run-id {out.run_id}`"
        )
        return
    client = cache_for(tracking_uri).client
    epochs = traced_epochs(client, out.run_id)
    if not epochs:
        out.skipped["run"] = "no traces"
        return
    for split, count in epochs.items():
        if count < MIN_EPOCHS:
            out.skipped[split] = f"{count} epoch(s) traced, SOI needs {MIN_EPOCHS}"
            continue
        try:
            analyze_run(out.run_id, [split], tracking_uri=tracking_uri)
        except Exception as exc:  # noqa: BLE001 - the other splits still count
            out.failed[split] = first_line(exc)
            if probe_http(tracking_uri) is not None:  # the server went away: stop trying
                return
        else:
            out.analysed.append(split)
    reasons = [f"`{s}`: {why}" for s, why in {**out.skipped, **out.failed}.items()]
    lines = [analysis_note(out.analysed)] if out.analysed else []
    if reasons:
        lines.append(f"- Not analysed: {'; '.join(reasons)}")
    set_description_section(client, out.run_id, "Analysis", "\n".join(lines))


def after_close(recorder: Any, status: str) -> None:
    """The step a ``TraceRecorder`` runs once it has closed its run: when training ended
    well (``FINISHED``), the run's analysis, kept in ``recorder.analysis``."""
    if status == "FINISHED" and recorder.run_id and recorder.tracking_uri:
        recorder.analysis = analyze_after_training(recorder.run_id, recorder.tracking_uri)
