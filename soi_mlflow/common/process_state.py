"""Leave the process as it was found: what a training changes globally, put back after it.

Lightning's ``seed_everything`` and ``Trainer(deterministic=...)`` seed the global random
generators, set ``PL_GLOBAL_SEED``/``PL_SEED_WORKERS``/``CUBLAS_WORKSPACE_CONFIG`` and switch
torch's deterministic algorithms on; a distributed strategy sets ``MASTER_ADDR``,
``LOCAL_RANK`` and torch's thread count. A library's ``train()`` must not leave any of
that behind in a user's process (a notebook, a script that goes on to log with MLflow), so
:func:`kept` saves it before and restores it after, however the block ends.

What is kept: ``os.environ`` (exactly), the ``random``/``numpy``/``torch`` (and CUDA)
generator states, torch's deterministic flags, default dtype, thread count, grad mode and
cuDNN flags, the warning filters, and the level, handlers and ``propagate`` of every
logger that existed before (with ``logging.disable``'s level).
"""

from __future__ import annotations

import logging
import os
import random
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Saved:
    environ: dict[str, str]
    python_rng: Any
    numpy_rng: Any
    loggers: dict[str, tuple[int, list[logging.Handler], bool]]
    logging_disabled: int
    torch: dict[str, Any] = field(default_factory=dict)


def _logger_state() -> dict[str, tuple[int, list[logging.Handler], bool]]:
    root = logging.getLogger()
    state = {"": (root.level, list(root.handlers), root.propagate)}
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger):
            state[name] = (logger.level, list(logger.handlers), logger.propagate)
    return state


def _torch_state() -> dict[str, Any]:
    torch = sys.modules.get("torch")
    if torch is None:  # not imported yet: the block may import it; nothing to restore
        return {}
    state = {
        "rng": torch.get_rng_state(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "dtype": torch.get_default_dtype(),
        "threads": torch.get_num_threads(),
        "grad": torch.is_grad_enabled(),
        "cudnn": (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark),
        "matmul": torch.get_float32_matmul_precision(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    return state


def _restore_torch(state: dict[str, Any]) -> None:
    if not state:
        return
    import torch

    torch.set_rng_state(state["rng"])
    torch.use_deterministic_algorithms(state["deterministic"], warn_only=state["warn_only"])
    torch.set_default_dtype(state["dtype"])
    if torch.get_num_threads() != state["threads"]:
        torch.set_num_threads(state["threads"])
    torch.set_grad_enabled(state["grad"])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = state["cudnn"]
    torch.set_float32_matmul_precision(state["matmul"])
    if "cuda_rng" in state:
        torch.cuda.set_rng_state_all(state["cuda_rng"])


def _save() -> _Saved:
    numpy = sys.modules.get("numpy")
    return _Saved(
        environ=dict(os.environ),
        python_rng=random.getstate(),
        numpy_rng=numpy.random.get_state() if numpy is not None else None,
        loggers=_logger_state(),
        logging_disabled=logging.root.manager.disable,
        torch=_torch_state(),
    )


def _restore(saved: _Saved) -> None:
    if dict(os.environ) != saved.environ:
        os.environ.clear()
        os.environ.update(saved.environ)
    random.setstate(saved.python_rng)
    if saved.numpy_rng is not None:
        sys.modules["numpy"].random.set_state(saved.numpy_rng)
    _restore_torch(saved.torch)
    for name, (level, handlers, propagate) in saved.loggers.items():
        logger = logging.getLogger(name or None)
        # setLevel clears every logger's cache: called only where the level changed, or
        # restoring thousands of loggers costs O(loggers^2) (0.2 s a training here)
        if logger.level != level:
            logger.setLevel(level)
        if logger.handlers != handlers:
            logger.handlers[:] = handlers
        logger.propagate = propagate
    logging.disable(saved.logging_disabled)


@contextmanager
def kept() -> Iterator[None]:
    """Run the block, then put back what it changed of the process's global state."""
    saved = _save()
    try:
        with warnings.catch_warnings():  # the filters, as they were
            yield
    finally:
        _restore(saved)
