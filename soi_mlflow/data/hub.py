"""Reaching the Hugging Face hub without hanging on network retries.

Before a hub load, the endpoint is probed with one short TCP connection. When it cannot be
reached, the load runs in the libraries' offline mode, so a cached copy is still used and
a missing one fails at once (instead of ~23 s of retries), with a message that says how to
point the suite at local files.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

from soi_mlflow.errors import SoiInputError

PROBE_TIMEOUT_S = 3.0
_TRUE = {"1", "ON", "YES", "TRUE"}


class HubUnavailableError(SoiInputError):
    """The hub cannot be reached and the data or model is not cached locally."""


def offline_requested() -> bool:
    """True when the user asked for offline mode through the libraries' variables."""
    names = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
    return any(os.environ.get(n, "").upper() in _TRUE for n in names)


def hub_unreachable_reason() -> str | None:
    """None if the hub endpoint accepts a TCP connection, else why not."""
    if offline_requested():
        return "offline mode is set (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE)"
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    url = urlparse(endpoint)
    host = url.hostname or "huggingface.co"
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            return None
    except OSError as exc:
        return f"{host}:{port} cannot be reached ({exc.strerror or exc})"


@contextmanager
def offline_mode() -> Iterator[None]:
    """Run the block with ``datasets``, ``transformers`` and ``huggingface_hub`` offline."""
    import datasets.config
    import huggingface_hub.constants as hub_constants

    saved = (datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE)
    datasets.config.HF_HUB_OFFLINE = True
    hub_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE = saved


@contextmanager
def hub_access(what: str, local_hint: str) -> Iterator[None]:
    """Load ``what`` from the hub, or from the cache when the hub cannot be reached.

    On failure while unreachable, raises :class:`HubUnavailableError` naming ``what``, the
    reason and ``local_hint`` (how to use local files instead).
    """
    reason = hub_unreachable_reason()
    if reason is None:
        yield
        return
    try:
        with offline_mode():
            yield
    except SoiInputError:
        raise
    except Exception as exc:  # the libraries raise several types for "not cached"
        raise HubUnavailableError(
            f"cannot load {what}: the Hugging Face hub is not reachable ({reason}) and it is "
            f"not in the local cache. {local_hint} (underlying error: {type(exc).__name__})"
        ) from exc
