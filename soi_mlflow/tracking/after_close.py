"""What a :class:`~soi_mlflow.tracking.recorder.TraceRecorder` does once it has closed
the run it wrote: the steps a layer above registers (the layer rule's one way up).

``tracking/`` never imports ``analysis/``, yet ``soi_mlflow.TraceRecorder`` analyses the
run when training ends well. The package's public face, ``soi_mlflow/__init__.py``,
registers that step here when the package is imported, which Python does before it
imports any module of the package; so every recorder, whatever path it was imported by,
runs the same steps. A step takes the recorder and the status the run ended with.
This module imports nothing, so ``import soi_mlflow`` stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

AfterClose = Callable[[Any, str], None]  # (the closed TraceRecorder, its end status)

_STEPS: list[AfterClose] = []


def register(step: AfterClose) -> AfterClose:
    """Run ``step(recorder, status)`` after every recorder's close (once, however often
    it is registered); returns ``step``."""
    if step not in _STEPS:
        _STEPS.append(step)
    return step


def unregister(step: AfterClose) -> None:
    """Stop running ``step`` (nothing if it was not registered)."""
    if step in _STEPS:
        _STEPS.remove(step)


def steps() -> tuple[AfterClose, ...]:
    """The registered steps, in the order they run."""
    return tuple(_STEPS)
