"""A regulator suspends, resumes and terminates a running trial from outside with signed requests; the coordinator
honours each before the next round, and refuses (and audits) unsigned or wrongly signed ones."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from participants.approval_keys import new_key_pair
from tests.approved_demo import DemoCopy
from tests.integration.conftest import sandbox_env
from trialcore.audit_verify import verify_chain

pytestmark = pytest.mark.integration

SANDBOX = Path(sys.executable).parent / "sandbox"


def events(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "audit.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def wait_for(predicate: Any, process: subprocess.Popen[str], timeout: float = 120.0) -> Any:
    """Poll until the predicate holds; fail at once (with the run's output) if the trial has already ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        if process.poll() is not None:
            stdout, stderr = process.communicate()
            raise AssertionError(
                f"the trial ended (exit {process.returncode}) first:\n{stdout[-2000:]}\n{stderr[-3000:]}"
            )
        time.sleep(0.1)
    raise AssertionError("timed out waiting for the trial")


def control(action: str, run_dir: Path, reason: str, *key: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(SANDBOX), action, str(run_dir), "--reason", reason, *key], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == expect, done.stderr
    return done


def test_suspend_resume_terminate_a_running_trial(unapproved_demo: DemoCopy) -> None:
    """Suspend holds the trial before its next round, resume lets it go on, terminate stops it: audited, state reported, exit 3."""
    spec = unapproved_demo.examples / "long-demo.yaml"
    spec.write_text(
        unapproved_demo.spec.read_text()
        .replace("trial_id: cancer-risk-demo", "trial_id: long-demo")
        .replace("rounds: 10", "rounds: 50")
        # far more noise than the demo, so that no site runs out of budget before the regulator's requests arrive,
        # however slowly the machine starts each request
        .replace("noise_multiplier: 5.508", "noise_multiplier: 60.0")
        .replace("evaluation_noise_multiplier: 40.0", "evaluation_noise_multiplier: 600.0")
    )
    unapproved_demo.approve(spec)
    runs = unapproved_demo.root / "runs-out"
    process = subprocess.Popen(
        [
            str(SANDBOX),
            "run",
            str(spec),
            "--runs-root",
            str(runs),
            "--metrics-port",
            "0",
            "--linger-seconds",
            "0",
            "--format",
            "json",
        ],
        env=sandbox_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        run_dir = wait_for(lambda: next(iter(runs.glob("long-demo/*")), None), process)
        wait_for(lambda: any(e["event"] == "round-aggregated" for e in events(run_dir)), process)
        key = ("--key", str(unapproved_demo.regulator_key))
        control("suspend", run_dir, "regulator review of round metrics", *key)
        wait_for(lambda: any(e["event"] == "trial-suspended" for e in events(run_dir)), process)
        held = sum(e["event"] == "round-aggregated" for e in events(run_dir))
        # while the trial is held, requests that are not the regulator's change nothing
        unsigned = control("resume", run_dir, "not the regulator", expect=3)
        assert "not signed" in unsigned.stderr
        impostor = new_key_pair(unapproved_demo.root / "impostor", "impostor").private_key
        control("terminate", run_dir, "an impostor", "--key", str(impostor), expect=5)
        wait_for(lambda: sum(e["event"] == "control-refused" for e in events(run_dir)) == 2, process)
        time.sleep(3)
        assert sum(e["event"] == "round-aggregated" for e in events(run_dir)) == held, "no round runs while suspended"
        assert not any(e["event"] in ("trial-resumed", "trial-terminated") for e in events(run_dir))
        control("resume", run_dir, "review done", *key)
        wait_for(lambda: sum(e["event"] == "round-aggregated" for e in events(run_dir)) > held, process)
        control("terminate", run_dir, "fairness gap above the sandbox plan's limit", *key)
        stdout, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 3, stderr[-3000:]
    summary = json.loads(stdout)
    assert summary["state"] == "terminated" and summary["rounds_completed"] < 50
    report = json.loads((run_dir / "report.json").read_text())
    assert report["state"] == "terminated"
    kinds = [e["event"] for e in events(run_dir)]
    assert (
        kinds.index("trial-suspended")
        < kinds.index("trial-resumed")
        < kinds.index("trial-terminated")
        < kinds.index("trial-finished")
    )
    refused = [e["payload"] for e in events(run_dir) if e["event"] == "control-refused"]
    assert [(r["action"], r["why"]) for r in refused] == [("resume", "unsigned"), ("terminate", "not-the-regulator")]
    assert kinds.index("trial-suspended") < kinds.index("control-refused") < kinds.index("trial-resumed")
    terminated = next(e for e in events(run_dir) if e["event"] == "trial-terminated")
    assert terminated["payload"]["reason"] == "fairness gap above the sandbox plan's limit"
    assert verify_chain(run_dir / "audit.jsonl").ok
    assert (
        f'sandbox_trial_state{{run_id="{run_dir.name}",sandbox_trial_state="terminated",trial="long-demo"}} 1.0'
        in (run_dir / "metrics.prom").read_text()
    )
    # a finished trial takes no more requests
    late = subprocess.run(
        [str(SANDBOX), "suspend", str(run_dir), "--reason", "too late"], capture_output=True, text=True, timeout=60
    )
    assert late.returncode == 2 and "already ended" in late.stderr
