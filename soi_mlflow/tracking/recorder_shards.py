"""Shard mode of the trace recorder under torch.distributed (``shards.py`` has the rules
and the collectives): the choice per epoch, every rank joining rank 0's run, each rank's
shard written through its own spool, and the close that waits for every rank."""

from __future__ import annotations

from typing import Any

import numpy as np

from soi_mlflow.tracking.epoch_writer import sharded_epoch
from soi_mlflow.tracking.shards import broadcast_text, choose_shards, wait_for_shards
from soi_mlflow.tracking.spool import Spool
from soi_mlflow.tracking.spool_writer import SpoolWriter
from soi_mlflow.tracking.store import client_for

Rows = dict[str, np.ndarray]


class ShardedEpochs:
    """The shard-mode half of :class:`~soi_mlflow.tracking.recorder.TraceRecorder`
    (which sets the attributes below and defines ``_submit``, ``_persist``,
    ``_log_metrics``, ``_send`` and ``_finish``)."""

    shards: bool | None
    capture: str
    log_metrics_enabled: bool
    last_metrics: dict[str, float]
    unsent: Any
    _sharded: bool  # an epoch was sharded: so are the later ones (on every rank alike)
    _joined: bool  # every rank knows the run (from the first sharded epoch)
    _rank: int
    _world: int
    _epoch: int
    _space: Any
    _run_id: str | None
    _tracking_uri: str | None
    _client: Any
    _spool: Spool | None
    _executor: SpoolWriter | None

    def _shard_now(self, local: dict[str, Rows]) -> bool:
        """Whether this epoch is sharded: always once one was, else :func:`choose_shards`
        (collective when ``shards`` is None)."""
        if self._world < 2:
            return False
        if not self._sharded:
            rows = sum(len(r["example_id"]) for r in local.values())
            self._sharded = choose_shards(self.shards, rows)
        return self._sharded

    def _end_sharded(self, local: dict[str, Rows], epoch: int) -> dict[str, float]:
        """Each rank puts its own shards into its spool; rank 0 logs the metrics, reduced
        from every rank's sums."""
        self._join_run()
        parts, names, metrics = sharded_epoch(local, self._space, epoch, self._rank)
        for split, rows in parts.items():
            capture = self.capture if split == "train" else "eval_pass"
            self._submit(self._persist, split, epoch, rows, capture, self._rank, names)
        if metrics and self.log_metrics_enabled:
            self._submit(self._log_metrics, metrics, epoch)
        self._submit(self._send)  # the epoch's shards and metrics in one round
        self.last_metrics |= metrics
        self._epoch = epoch + 1
        return metrics

    def _join_run(self) -> None:
        """Every rank learns rank 0's run id and tracking URI (once, as tensors) and
        opens its own client, spool and writer thread for it."""
        if self._joined:
            return
        self._joined = True
        run_id, uri = broadcast_text(self._run_id), broadcast_text(self._tracking_uri)
        if self._rank != 0:
            self._run_id, self._tracking_uri = run_id, uri
            self._client = client_for(uri)
            self._spool = Spool(run_id, uri)
            self._executor = SpoolWriter(self._send, lambda: self.unsent.pending > 0)

    def _finish_ranks(self, status: str, exception: BaseException | None) -> None:
        """The last sends. Sharded and ending well (every rank closes then), rank 0 ends
        the run, and the analysis reads it, only once every rank's last shards are in
        the store or in its spool; otherwise each rank finishes on its own."""
        together = self._joined and status == "FINISHED"
        if self._rank or not together:
            self._finish(status, exception)
        if together:
            wait_for_shards(self.unsent.pending if self._rank else 0, self._rank)
        if together and not self._rank:
            self._finish(status, exception)

    # defined by TraceRecorder
    def _submit(self, fn: Any, *args: Any) -> None:
        raise NotImplementedError

    def _persist(self, *args: Any) -> None:
        raise NotImplementedError

    def _log_metrics(self, metrics: dict[str, float], step: int) -> None:
        raise NotImplementedError

    def _send(self) -> None:
        raise NotImplementedError

    def _finish(self, status: str, exception: BaseException | None) -> None:
        raise NotImplementedError
