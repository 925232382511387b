"""A SuperLink unreachable at start, or gone mid-trial: exit 6, the state recorded, nothing half-written.

The mid-trial test kills the shared topology's SuperLink in round 2, brings it back and resumes the
trial with ``sandbox run --resume``; it runs last (this file sorts after ``test_pilot.py``).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.approved_demo import approved_demo_at
from tests.integration.deployment.conftest import PilotRun, verify, wait_for_event
from tests.integration.deployment.topology import RESUMED_TRIAL_ID, SANDBOX, SITES, Topology, deployment_env
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
    # The spec itself may name the deployment: no --engine flag, the same bounded wait and exit 6.
    address = f"127.0.0.1:{free_port()}"
    document = yaml.safe_load(demo.spec.read_text())
    document["engine"] = {"name": "deployment", "superlink": address, "root_certificates": "../../ca.pem"}
    deployed = demo.spec.with_name("deployed.yaml")
    deployed.write_text(yaml.safe_dump(document, sort_keys=False))
    demo.approve(deployed)
    from_spec = subprocess.run(
        [SANDBOX, "run", str(deployed), "--wait-seconds", "2", "--runs-root", str(runs)],
        env=deployment_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert from_spec.returncode == 6, from_spec.stderr
    assert address in from_spec.stderr and "unreachable" in from_spec.stderr, from_spec.stderr


def test_coordinator_gone_mid_round_exits_6_then_resumes(
    topology: Topology, pilot_run: PilotRun, tmp_path: Path
) -> None:
    """The SuperLink and its ServerApp killed in round 2: sandbox run exits 6, engine-unreachable.json says so, no report,
    nothing half-written, the chain intact, each site's join exits 6. Once the SuperLink is back and the sites rejoin,
    sandbox run --resume (no engine flag: the run folder names its engine, SuperLink, CA and time bounds) goes on
    from round 1 with the same global model: round 1 is not redone, no site is charged twice for a round, and every
    chain verifies."""
    topology.join(pilot_run.killed_site)  # the pilot's lost site comes back
    topology.wait_online()
    runs = tmp_path / "runs"
    run = topology.start_run(
        runs, "--wait-seconds", "5", "--timeout", "round-reply=600", spec=topology.demo.examples / "pilot-resume.yaml"
    )
    try:
        run_dir = wait_for_event(runs, "round-configured", round_number=2)
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
    assert json.loads((run_dir / "checkpoint.json").read_text())["round"] == 1
    checked = verify(run_dir / "audit.jsonl")
    assert checked.returncode == 0 and "interrupted" in checked.stdout, checked.stdout + checked.stderr
    for site_id, process in topology.joins.items():
        assert process.wait(timeout=120) == 6, f"{site_id}: {topology.logs()[-3000:]}"

    topology.restart()
    started = json.loads((run_dir / "audit.jsonl").read_text().splitlines()[0])
    assert started["event"] == "trial-started" and started["payload"]["time_bounds"]["round-reply"] == 600
    # No engine flag: the run folder says it ran on this SuperLink's deployment engine, with its time bounds.
    resumed = topology.start_run(runs, resume=run_dir, engine_flags=False)
    stdout, stderr = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, stdout + stderr[-4000:] + topology.logs()
    report = json.loads((run_dir / "report.json").read_text())
    assert report["state"] == "finished" and report["rounds_completed"] == 2
    events = [json.loads(line) for line in (run_dir / "audit.jsonl").read_text().splitlines()]
    aggregated = [e["payload"] for e in events if e["event"] == "round-aggregated"]
    assert [a["round"] for a in aggregated] == [1, 2], "round 1 is not redone"
    resumed_at = [e["payload"] for e in events if e["event"] == "trial-resumed"]
    assert resumed_at == [resumed_at[0]] and resumed_at[0]["resumes_at_round"] == 2
    assert resumed_at[0]["time_bounds"]["round-reply"] == 600, "the resumed run keeps the bounds it started with"
    # Every site answered round 2 of the resumed run: a round-2 model other than the one sent before the kill
    # would have been refused by the sites that had answered it (one training question per round).
    assert sorted(aggregated[1]["trained_sites"]) == sorted(SITES)
    assert not [e for e in events if e["event"] == "update-rejected"], "no site refused or was lost"
    assert verify(run_dir / "audit.jsonl").returncode == 0
    assert (run_dir / "engine.log").is_file(), "the ServerApp's Flower log is kept in the run folder"
    for site_id in SITES:
        chain = topology.state_dir(site_id) / RESUMED_TRIAL_ID / "audit.jsonl"
        assert verify(chain).returncode == 0
        site_events = [json.loads(line) for line in chain.read_text().splitlines()]
        assert not [e for e in site_events if "question-budget" in json.dumps(e["payload"])], site_id
        charges = [
            charge
            for ledger in (topology.state_dir(site_id) / "privacy").glob("*.ledger.jsonl")
            for charge in map(json.loads, ledger.read_text().splitlines())
            if charge["trial_id"] == RESUMED_TRIAL_ID
        ]
        paid = [(c["round"], c["release"], c.get("statistic")) for c in charges]
        assert paid and len(paid) == len(set(paid)), f"{site_id} charged twice: {paid}"
        assert {r for r, release, _ in paid if release == "dp-sgd"} == {1, 2}, f"{site_id}: {paid}"
