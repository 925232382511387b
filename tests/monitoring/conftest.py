"""Fixtures for the monitoring tests: a fresh registry per test and the known trial.

The repository root is put on ``sys.path`` so ``tests.prometheus_server`` (the
shared real-Prometheus helper) and ``tests.monitoring.known_trial`` import whether
pytest runs as ``pytest`` or ``python -m pytest``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from monitoring.exporter import serve  # noqa: E402
from monitoring.metrics import SandboxMetrics  # noqa: E402
from tests.monitoring.known_trial import new_metrics, populate  # noqa: E402
from tests.prometheus_server import PrometheusServer, require_promtool, start_prometheus  # noqa: E402


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


@pytest.fixture(scope="session")
def scraped_trial(
    running_trial: Callable[[], tuple[CollectorRegistry, SandboxMetrics]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[PrometheusServer]:
    """A real Prometheus (shipped config and rules) that has scraped the running known trial twice.

    Shared by the tests that only read from it: Prometheus 2.x applies a new scrape
    configuration after about 5 s, so one server per test would slow the run down.
    """
    registry, _ = running_trial()
    with (
        serve(registry, port=0) as exporter,
        start_prometheus(
            tmp_path_factory.mktemp("prometheus"), scrape_targets=[f"127.0.0.1:{exporter.port}"]
        ) as prometheus,
    ):
        prometheus.wait_for("count_over_time(sandbox_round[1m]) >= 2", timeout=20)
        yield prometheus
