"""One training run: its settings (``config``), the store checked before it
(``store_checks``), what it says about itself (``describe``), the training (``run``),
the settings that change it (``key``: params, the training key, the resume check) and
its ``config.yaml`` (``settings_io``). ``train(TrainConfig(...))`` is the way in.

The names below are imported on first use, so ``soi-mlflow --help`` and the settings
I/O load no training library."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EXAMPLE_SPLITS": "config",
    "TrainConfig": "config",
    "TrainResult": "config",
    "validate_config": "config",
    "run_tags": "describe",
    "training_note": "describe",
    "run_params": "key",
    "preflight": "store_checks",
    "build_model": "run",
    "mixture_trace_callback": "run",
    "train": "run",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
