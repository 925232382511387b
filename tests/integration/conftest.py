"""One simulated demo trial shared by the integration tests, scraped by a real Prometheus.

The trial runs as a user runs it (``sandbox run examples/demo.yaml``, in a subprocess) on a free
metrics port, while a real Prometheus server configured from ``monitoring/prometheus/`` scrapes
it every second. Both are stopped before the session ends. It runs on a private copy of
``examples/`` whose four sites have signed their approvals, as ``make demo`` prepares them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from participants.approval_keys import new_key_pair
from tests.approved_demo import approved_demo_at
from tests.prometheus_server import PrometheusServer, free_port, start_prometheus

REPO = Path(__file__).resolve().parents[2]
SANDBOX = Path(sys.executable).parent / "sandbox"


@dataclass(frozen=True)
class DemoRun:
    """The shared demo run: its summary (``--format json``), folder, report and the Prometheus that watched it."""

    summary: dict[str, Any]
    run_dir: Path
    report: dict[str, Any]
    prometheus: PrometheusServer
    stderr: str
    coordinator_key: Path
    """The public key of the coordinator key that signed the run's report (``--coordinator-key``)."""


def sandbox_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "FLWR_TELEMETRY_ENABLED": "0",
            "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
            "RAY_USAGE_STATS_ENABLED": "0",
        }
    )
    return env


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    """Run the demo once, scraped by a real Prometheus (session-scoped)."""
    workdir = tmp_path_factory.mktemp("demo")
    demo = approved_demo_at(workdir)
    coordinator = new_key_pair(workdir / "coordinator-keys", "coordinator")
    port = free_port()
    with start_prometheus(
        workdir / "prometheus", scrape_targets=[f"127.0.0.1:{port}"], scrape_interval="1s"
    ) as prometheus:
        completed = subprocess.run(
            [
                str(SANDBOX),
                "run",
                str(demo.spec),
                "--runs-root",
                str(workdir / "runs"),
                "--metrics-port",
                str(port),
                "--linger-seconds",
                "3",
                "--format",
                "json",
                "--coordinator-key",
                str(coordinator.private_key),
            ],
            cwd=workdir,
            env=sandbox_env(),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert completed.returncode == 0, completed.stderr[-4000:]
        summary = json.loads(completed.stdout)
        run_dir = Path(summary["run_dir"])
        if not run_dir.is_absolute():
            run_dir = workdir / run_dir
        report = json.loads((run_dir / "report.json").read_text())
        yield DemoRun(
            summary=summary,
            run_dir=run_dir,
            report=report,
            prometheus=prometheus,
            stderr=completed.stderr,
            coordinator_key=coordinator.public_key,
        )
