"""Alerts: rule evaluation (pure, :mod:`backend.alerts.rules`) and delivery (I/O, :mod:`backend.alerts.delivery`)."""
