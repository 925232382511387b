"""Observe a running trial: Prometheus metrics, their exporter, alert rules and a Grafana dashboard.

``monitoring`` only observes: it must never change trial state, and imports nothing of the
project but ``trialcore``.

Modules
-------
metrics
    :class:`~monitoring.metrics.SandboxMetrics`, every metric definition.
exporter
    :func:`~monitoring.exporter.serve` (HTTP) and :func:`~monitoring.exporter.write_textfile`.

Data files: ``prometheus/`` (scrape config, alert rules and their promtool unit
tests) and ``grafana/`` (provisioning and the ``sandbox`` dashboard).
"""

from __future__ import annotations

from monitoring.exporter import MetricsServer, serve, write_textfile
from monitoring.metrics import SandboxMetrics

__all__ = ["MetricsServer", "SandboxMetrics", "serve", "write_textfile"]
