"""The ``soi-mlflow sync`` command: send the spools a server outage left on this machine.

Each run's spool (:mod:`soi_mlflow.tracking.spool`) goes to the tracking URI it was
filled for, or to ``--tracking-uri`` where the run lives now.
"""

from __future__ import annotations

from soi_mlflow.errors import SoiInputError
from soi_mlflow.tracking.health import check_tracking, probe_http
from soi_mlflow.tracking.local import soi_home
from soi_mlflow.tracking.spool import SendResult, Spool, spooled_runs
from soi_mlflow.tracking.sync_settings import SyncSettings

__all__ = ["SyncSettings", "sync"]


def sync(settings: SyncSettings) -> dict[str, SendResult]:
    """Send the spools of ``settings`` in order; print one line per run. Raises
    :class:`SoiInputError` if something is still waiting afterwards."""
    runs = [settings.run_id] if settings.run_id else spooled_runs()
    if not runs:
        print(f"nothing to send: no spooled runs under {soi_home() / 'runs'}")
        return {}
    results: dict[str, SendResult] = {}
    for run_id in runs:
        spool = Spool.of_run(run_id, settings.tracking_uri)
        waiting = len(spool.pending())
        if probe_http(spool.tracking_uri) is not None:
            raise SoiInputError(
                f"tracking server {spool.tracking_uri} does not answer: nothing was sent, "
                f"the spool of run {run_id} stays in {spool.folder}. Run soi-mlflow sync "
                "again once the server is up (or --tracking-uri where the run lives now)."
            )
        check_tracking(spool.tracking_uri)  # a store that answers but cannot be used
        result = spool.send()
        results[run_id] = result
        state = "complete" if not result.pending else f"{result.pending} still waiting"
        print(
            f"run {run_id}: sent {result.sent} of {waiting} spooled entries to "
            f"{spool.tracking_uri} ({state})"
        )
    left = {r: res for r, res in results.items() if res.pending}
    if left:
        first = next(iter(left.values()))
        raise SoiInputError(
            f"{len(left)} run(s) still incomplete ({', '.join(left)}): {first.error}; "
            "run soi-mlflow sync again later"
        )
    return results
