"""A SuperLink unreachable at start, or gone mid-trial: exit 6, the state recorded, nothing half-written.

The mid-trial test kills the shared topology's SuperLink, so it runs last (this file sorts after
``test_pilot.py``).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.approved_demo import approved_demo_at
from tests.integration.deployment.conftest import PilotRun, verify, wait_for_event
from tests.integration.deployment.topology import SANDBOX, Topology, deployment_env
from tests.prometheus_server import free_port

pytestmark = pytest.mark.integration


def test_superlink_unreachable_at_start_exits_6_and_writes_nothing(tmp_path: Path) -> None:
    """No SuperLink at the address: after --wait-seconds, exit 6 with one clear line; no run folder is made."""
    demo = approved_demo_at(tmp_path / "demo")
    (tmp_path / "ca.pem").write_text("unused: nothing answers")
    runs = tmp_path / "runs"
    no_tls = subprocess.run(
        [
            SANDBOX,
            "run",
            str(demo.spec),
            "--engine",
            "deployment",
            "--superlink",
            "127.0.0.1:9",
            "--runs-root",
            str(runs),
        ],
        env=deployment_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert no_tls.returncode == 2 and "--root-certificates" in no_tls.stderr, no_tls.stderr
    started = time.monotonic()
    done = subprocess.run(
        [
            SANDBOX,
            "run",
            str(demo.spec),
            "--engine",
            "deployment",
            "--superlink",
            f"127.0.0.1:{free_port()}",
            "--root-certificates",
            str(tmp_path / "ca.pem"),
            "--wait-seconds",
            "2",
            "--runs-root",
            str(runs),
        ],
        env=deployment_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 6, done.stderr
    assert "unreachable" in done.stderr and "Traceback" not in done.stderr
    assert not runs.exists() or not any(runs.rglob("*.json*")), "nothing is written for a trial that never started"
    assert time.monotonic() - started < 120


def test_superlink_gone_mid_trial_exits_6_with_state_recorded(
    topology: Topology, pilot_run: PilotRun, tmp_path: Path
) -> None:
    """The SuperLink killed once the trial started: sandbox run exits 6, engine-unreachable.json says so, no report,
    the chain intact; every running site's participants join exits 6 after its bounded wait."""
    assert pilot_run.killed_site not in topology.joins  # the pilot's lost site stays away: the trial waits for it
    runs = tmp_path / "runs"
    run = topology.start_run(runs, "--wait-seconds", "5")
    try:
        run_dir = wait_for_event(runs, "regulator-keys", round_number=None)
        topology.kill_superlink()
        stdout, stderr = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode == 6, stdout + stderr[-4000:]
    failure = json.loads(stdout)
    assert failure["exit_code"] == 6 and "unreachable" in failure["error"], failure
    assert "Traceback" not in stderr
    recorded = json.loads((run_dir / "engine-unreachable.json").read_text())
    assert recorded["state"] == "interrupted" and recorded["superlink"] == topology.address
    assert not (run_dir / "report.json").exists(), "no report for a run that did not end"
    assert not list(run_dir.glob(".*.tmp")), "no half-written file is left"
    checked = verify(run_dir / "audit.jsonl")
    assert checked.returncode == 0 and "interrupted" in checked.stdout, checked.stdout + checked.stderr
    assert topology.joins, "the sites still running when the SuperLink went away"
    for site_id, process in topology.joins.items():
        assert process.wait(timeout=120) == 6, f"{site_id}: {topology.logs()[-3000:]}"
