"""Fixtures for the monitoring tests: a fresh registry per test and the known trial.

The repository root is put on ``sys.path`` so ``tests.prometheus_server`` (the
shared real-Prometheus helper) and ``tests.monitoring.known_trial`` import whether
pytest runs as ``pytest`` or ``python -m pytest``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import pytest
from prometheus_client import CollectorRegistry

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from monitoring.metrics import SandboxMetrics  # noqa: E402
from tests.monitoring.known_trial import new_metrics, populate  # noqa: E402
from tests.prometheus_server import require_promtool  # noqa: E402


@pytest.fixture
def registry() -> CollectorRegistry:
    """A fresh registry: no test shares metric state."""
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> SandboxMetrics:
    """The known trial's metrics, freshly constructed."""
    return new_metrics(registry)


@pytest.fixture(scope="session")
def running_trial() -> Callable[[], tuple[CollectorRegistry, SandboxMetrics]]:
    """Builds a fresh registry holding the known trial's metrics, every metric set."""

    def build() -> tuple[CollectorRegistry, SandboxMetrics]:
        fresh = CollectorRegistry()
        return fresh, populate(new_metrics(fresh))

    return build


@pytest.fixture(scope="session")
def promtool() -> str:
    """Path of promtool; the test fails with an install hint when it is missing."""
    return require_promtool()
