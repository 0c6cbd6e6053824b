"""A counter of the torch.Tensor methods that read a tensor on the host (``.item()``,
``.cpu()``, ``.tolist()``, ``.numpy()``, ``float(t)``, ``bool(t)``, ...), called by the
trace path on a batch: on CUDA each one makes the host wait for the device. The methods
are wrapped while the counter is entered and restored after; a call counts when the
nearest caller outside torch is soi_mlflow code running inside a per-batch entry point
(``TraceRecorder.add``, the adapters' batch hooks) on a split's later batches (the first
batch of a split is checked in full on the host when its values are already there)."""

from __future__ import annotations

import collections
import functools
import sys
from types import CodeType, FrameType
from typing import Any

import torch

from soi_mlflow.tracking.recorder import TraceRecorder

METHODS = (
    "item",
    "cpu",
    "tolist",
    "numpy",
    "__float__",
    "__int__",
    "__bool__",
    "__index__",
    "__array__",
)
ADD = TraceRecorder.add.__code__


def _module(frame: FrameType) -> str:
    return frame.f_globals.get("__name__", "")


class HostReads:
    """``with HostReads() as reads: ...``; then ``reads.calls``: ``(method, where)`` ->
    count of the trace path's host reads on later batches, ``reads.first``: on the first.
    ``entries``: more per-batch entry points (an adapter's batch hooks)."""

    def __init__(self, *entries: Any) -> None:
        self.per_batch = {ADD, *(getattr(e, "__code__", e) for e in entries)}
        self.calls: collections.Counter[tuple[str, str]] = collections.Counter()
        self.first: collections.Counter[tuple[str, str]] = collections.Counter()
        self._saved: dict[str, Any] = {}
        self._own: set[str] = set()  # methods torch.Tensor defines itself (else inherited)

    def _note(self, name: str, frame: FrameType | None) -> None:
        while frame is not None and _module(frame).startswith("torch"):
            frame = frame.f_back
        if frame is None or not _module(frame).startswith("soi_mlflow"):
            return
        where = f"{frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno}"
        codes: list[tuple[CodeType, FrameType]] = []
        f: FrameType | None = frame
        while f is not None:
            if f.f_code in self.per_batch:
                codes.append((f.f_code, f))
            f = f.f_back
        if not codes:
            return
        first = any(code is ADD and f.f_locals.get("first") for code, f in codes)
        (self.first if first else self.calls)[(name, where)] += 1

    def _wrap(self, name: str) -> Any:
        method = self._saved[name]

        @functools.wraps(method)
        def counted(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            self._note(name, sys._getframe(1))
            return method(tensor, *args, **kwargs)

        return counted

    def __enter__(self) -> HostReads:
        for name in METHODS:
            if name in torch.Tensor.__dict__:
                self._own.add(name)
            self._saved[name] = getattr(torch.Tensor, name)
            setattr(torch.Tensor, name, self._wrap(name))
        return self

    def __exit__(self, *exc: Any) -> None:
        for name, method in self._saved.items():
            if name in self._own:
                setattr(torch.Tensor, name, method)
            else:
                delattr(torch.Tensor, name)  # the inherited method shows through again
