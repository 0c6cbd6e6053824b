"""Studies: the only place that launches several training runs."""
