"""Tracking: the trace format, the trace callback, and MLflow run conventions."""
