"""One loopback deployment shared by every deployment test, and the one pilot trial they examine.

The SuperLink and SuperNodes are started once per session (:mod:`tests.integration.deployment.topology`);
the pilot trial runs once through them, while a fourth SuperNode with an unregistered key tries to
join and one registered SuperNode is killed mid-round (round 2): each test checks one promise
of that run. Deployment messages take seconds each on loopback, so the trial has 2 rounds.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from participants.approval_keys import new_key_pair
from tests.integration.deployment.topology import Topology, build_topology
from tests.prometheus_server import free_port


@pytest.fixture(scope="session")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    """The running topology (session-scoped); every process is stopped at the end."""
    built = build_topology(tmp_path_factory.mktemp("deployment"))
    try:
        yield built
    finally:
        built.close()
        assert built.leftovers() == [], "processes of the topology survived its clean-up"


@dataclass(frozen=True)
class PilotRun:
    """The shared pilot trial: how ``sandbox run`` ended, its folder and report, and the rogue node's attempt."""

    returncode: int
    summary: dict[str, Any]
    stderr: str
    run_dir: Path
    report: dict[str, Any]
    rogue_returncode: int
    rogue_log: str
    killed_site: str
    wall_seconds: float
    coordinator_key: Path
    """The public key of the coordinator key the run was given (``--coordinator-key``) to sign its report."""


def wait_for_event(run_dir_parent: Path, event: str, *, round_number: int | None, timeout: float = 600) -> Path:
    """The run folder once its coordinator chain holds ``event`` (for ``round_number``, unless None)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for chain in run_dir_parent.glob("*/*/audit.jsonl"):
            for line in chain.read_text().splitlines():
                entry = json.loads(line)
                if entry["event"] == event and round_number in (None, entry["payload"].get("round")):
                    return chain.parent
        time.sleep(0.5)
    raise AssertionError(f"no {event} for round {round_number} within {timeout} s")


@pytest.fixture(scope="session")
def pilot_run(topology: Topology, tmp_path_factory: pytest.TempPathFactory) -> PilotRun:
    """Run the pilot once: a rogue node tries to join during round 1; gb-leeds is killed once round 2 starts."""
    runs = tmp_path_factory.mktemp("pilot-runs")
    coordinator = new_key_pair(tmp_path_factory.mktemp("coordinator-key"), "coordinator")
    started = time.monotonic()
    run = topology.start_run(runs, "--coordinator-key", str(coordinator.private_key))
    try:
        wait_for_event(runs, "round-configured", round_number=1)
        rogue = topology.join("gb-leeds", key="rogue", port=free_port())
        rogue_returncode = rogue.wait(timeout=120)
        wait_for_event(runs, "round-configured", round_number=2)
        topology.kill_site("gb-leeds")
        stdout, stderr = run.communicate(timeout=900)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    wall = time.monotonic() - started
    summary = json.loads(stdout) if stdout.strip().startswith("{") else {}
    run_dir = Path(summary["run_dir"]) if "run_dir" in summary else next(runs.glob("*/*"))
    report_path = run_dir / "report.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    return PilotRun(
        returncode=run.returncode,
        summary=summary,
        stderr=stderr + topology.logs(),
        run_dir=run_dir,
        report=report,
        rogue_returncode=rogue_returncode,
        rogue_log=(topology.root / "join-rogue.log").read_text(errors="replace"),
        killed_site="gb-leeds",
        wall_seconds=wall,
        coordinator_key=coordinator.public_key,
    )


def verify(path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """``sandbox audit verify PATH [OPTIONS]`` (text)."""
    from tests.integration.deployment.topology import SANDBOX, run_cli

    return run_cli(SANDBOX, "audit", "verify", str(path), *options)
