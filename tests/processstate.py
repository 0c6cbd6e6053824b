"""A snapshot of what a library must leave as it found it in a user's process, and the
differences between two snapshots (tests/test_process_state_e2e.py).

Written apart from ``soi_mlflow/common/process_state.py`` on purpose: the test must not check the
library with the library's own idea of what "state" is."""

from __future__ import annotations

import logging
import os
import random
import signal
import warnings
from typing import Any

# MLflow's telemetry client sets and unsets this variable from a background thread started
# at `import mlflow` (when its config fetch fails, as it does offline), at any moment
MLFLOW_OWN_ASYNC = ("_MLFLOW_TELEMETRY_",)


def _loggers() -> dict[str, tuple]:
    out = {}
    root = logging.getLogger()
    items = [("", root), *logging.Logger.manager.loggerDict.items()]
    for name, logger in items:
        if isinstance(logger, logging.Logger):
            handlers = tuple(id(h) for h in logger.handlers)
            out[name] = (logger.level, handlers, logger.propagate, logger.disabled)
    return out


def snapshot() -> dict[str, Any]:
    """Environment, MLflow's globals, logging, warning filters, torch's global settings,
    the global random generators, matplotlib's backend and the signal handlers."""
    import matplotlib
    import mlflow
    import numpy as np
    import torch

    active = mlflow.active_run()
    np_state = np.random.get_state()
    return {
        "os.environ": dict(os.environ),
        "cwd": os.getcwd(),
        "mlflow tracking URI": mlflow.get_tracking_uri(),
        "mlflow registry URI": mlflow.get_registry_uri(),
        "mlflow active run": active.info.run_id if active else None,
        # no public getter: read here, in a test, never in the library
        "mlflow active experiment": getattr(mlflow.tracking.fluent, "_active_experiment_id", None),
        "logging.disable": logging.root.manager.disable,
        "loggers": _loggers(),
        "warning filters": tuple(warnings.filters),
        "torch threads": torch.get_num_threads(),
        "torch deterministic": (
            torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
        ),
        "torch default dtype": torch.get_default_dtype(),
        "torch grad mode": torch.is_grad_enabled(),
        "torch matmul precision": torch.get_float32_matmul_precision(),
        "random state": random.getstate(),
        "numpy random state": (np_state[0], np_state[1].tobytes(), *np_state[2:]),
        "torch random state": torch.get_rng_state().numpy().tobytes(),
        "matplotlib backend": matplotlib.get_backend(),
        "signal handlers": (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)),
    }


def differences(
    before: dict[str, Any], after: dict[str, Any], ignore: tuple[str, ...] = ()
) -> list[str]:
    """What changed, one readable line per changed item (loggers that only appear after,
    e.g. created by a first import, are not changes)."""
    lines = []
    for key, old in before.items():
        new = after[key]
        if key in ignore or old == new:
            continue
        if key == "os.environ":
            for name in sorted(set(old) | set(new)):
                if name.startswith(MLFLOW_OWN_ASYNC):
                    continue
                if old.get(name) != new.get(name):
                    lines.append(f"os.environ[{name!r}]: {old.get(name)!r} -> {new.get(name)!r}")
        elif key == "loggers":
            lines += [
                f"logger {name!r}: {state} -> {new[name]}"
                for name, state in old.items()
                if name in new and new[name] != state
            ]
        elif key.endswith("random state"):
            lines.append(f"{key} changed")
        else:
            lines.append(f"{key}: {str(old)[:200]} -> {str(new)[:200]}")
    return lines
