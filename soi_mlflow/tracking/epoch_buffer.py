"""One split's rows of the epoch in progress, kept where the logits are: each batch's
scores and gold labels are copied into a preallocated buffer on their device at the next
free position (two copies, no host sync, and no hold on the caller's tensors, which it
may reuse), and the per-row statistics (``trace_rows.statistics``) are computed once the
buffer is full or the epoch ends, over the whole chunk at once: a few kernels per chunk
of thousands of rows rather than a dozen per batch, which is what the caller's thread
would otherwise pay at every ``add``. The chunks come to the host at the epoch's end."""

from __future__ import annotations

from typing import Any

import numpy as np

from soi_mlflow.tracking.trace_rows import is_tensor, statistics, to_numpy

# rows a buffer holds: up to 64K, and scores of at most 4M values (16 MB) per split
MAX_ROWS = 65536
MAX_VALUES = 1 << 22


def join(parts: list[Any]) -> Any:
    """Per-batch parts of a column joined: on their device when all are tensors."""
    if all(is_tensor(p) for p in parts):
        import torch

        return torch.cat([p.to(parts[0].device, non_blocking=True) for p in parts])
    return np.concatenate([to_numpy(p) for p in parts])


class SplitBuffer:
    """The rows one split gathered since the epoch began: finished chunks of statistics
    (dicts of per-row columns, tensors or arrays, as ``trace_rows.stack`` takes them) and
    the chunk being filled."""

    def __init__(self) -> None:
        self.chunks: list[dict[str, Any]] = []
        self._key: tuple[Any, ...] | None = None  # what a chunk's rows share
        self._scores: Any = None
        self._gold: Any = None
        self._pos = 0
        self._rows = 0  # the buffer's capacity
        self._parts: dict[str, list[Any]] = {"example_id": [], "member_idx": [], "task_idx": []}
        self._steps: list[int] = []
        self._lengths: list[int] = []

    def add(
        self,
        ids: Any,
        scores: Any,
        gold: Any,
        member_idx: Any,
        task_idx: Any,
        classes: np.ndarray,
        from_probs: bool,
        step: int,
    ) -> None:
        """One checked batch (``batch.checked_batch``): its scores and gold labels are
        copied into the buffer; ids, member and task indices are kept as given."""
        import torch

        s = scores.detach() if is_tensor(scores) else torch.as_tensor(np.asarray(scores))
        n, width = int(s.shape[0]), int(s.shape[1])
        key = (s.device, width, from_probs, classes.tobytes())
        if key != self._key or self._pos + n > self._rows:
            self.finish_chunk()
            self._key = key
            old = self._scores
            if old is None or old.shape[1] != width or old.device != s.device or n > len(old):
                rows = self._rows = max(n, min(MAX_ROWS, MAX_VALUES // max(width, 1)))
                self._scores = torch.empty((rows, width), dtype=torch.float32, device=s.device)
                self._gold = torch.empty(rows, dtype=torch.long, device=s.device)
        rows = slice(self._pos, self._pos + n)
        self._scores[rows].copy_(s, non_blocking=True)
        g = gold if is_tensor(gold) else torch.from_numpy(np.ascontiguousarray(gold))
        self._gold[rows].copy_(g, non_blocking=True)
        self._pos += n
        self._parts["example_id"].append(ids)
        self._parts["member_idx"].append(member_idx)
        self._parts["task_idx"].append(task_idx)
        self._steps.append(step)
        self._lengths.append(n)

    def finish_chunk(self) -> None:
        """The statistics of the rows in the buffer, as one finished chunk."""
        if not self._pos:
            return
        assert self._key is not None
        _, width, from_probs, _ = self._key
        classes = np.frombuffer(self._key[3], dtype=np.int64)
        rows = slice(0, self._pos)
        chunk = {key: join(parts) for key, parts in self._parts.items()}
        stats = statistics(
            self._scores[rows], self._gold[rows], chunk["task_idx"], classes, width, from_probs
        )
        chunk |= stats
        chunk["gold"] = self._gold[rows].clone()  # the buffer is filled again
        chunk["step"] = np.repeat(np.asarray(self._steps, np.int64), self._lengths)
        self.chunks.append(chunk)
        self._pos = 0
        for parts in self._parts.values():
            parts.clear()
        self._steps.clear()
        self._lengths.clear()

    def take(self) -> list[dict[str, Any]]:
        """Every chunk of the epoch (the last one finished now); the buffer starts anew."""
        self.finish_chunk()
        chunks, self.chunks = self.chunks, []
        return chunks
