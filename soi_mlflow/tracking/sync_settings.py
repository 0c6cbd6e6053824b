"""The settings of the ``soi-mlflow sync`` command (``tracking/sync.py``), apart from the
sending code so that the command table imports them without loading any network module."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SyncSettings:
    """Which spooled runs to send (every run spooled on this machine by default)."""

    run_id: str | None = None
    """send only this run's spool"""
    tracking_uri: str | None = None
    """send to this tracking URI instead of the one each spool was filled for"""
