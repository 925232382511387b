"""Issue 18, item 6: a ``sandbox run`` killed mid-trial says so, and ``--resume`` finishes it without charging twice.

A real ``sandbox run`` of the demo (cut to three rounds) is SIGKILLed once its first round is
checkpointed. ``audit verify`` then reports the run ``interrupted``; ``sandbox run --resume RUN_DIR``
says so, ends what the killed engine left running, and goes on from round 2 with the global model
of round 1. At the end every chain verifies, the report holds rounds 1-3 once each, and every
site's ledger holds each release (training, evaluation, feature statistics) once, one training
charge per round, and the epsilon report.json and metrics.prom show.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sandbox.engine_processes import alive, recorded
from tests.approved_demo import DEMO_SITES, copy_demo
from tests.integration.conftest import SANDBOX, sandbox_env
from trialcore.audit_verify import verify_chain

pytestmark = pytest.mark.integration

ROUNDS = 3
KILL_AFTER_ROUND = 1


def _sandbox(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SANDBOX), *args], cwd=cwd, env=sandbox_env(), capture_output=True, text=True, timeout=600
    )


def _events(chain: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in chain.read_text(encoding="utf-8").splitlines() if line.strip()]


def _kill_mid_trial(spec: Path, runs: Path, workdir: Path) -> Path:
    """Start ``sandbox run``; SIGKILL it once round ``KILL_AFTER_ROUND`` is checkpointed; return its run folder."""
    run = subprocess.Popen(
        [str(SANDBOX), "run", str(spec), "--runs-root", str(runs), "--metrics-port", "0", "--linger-seconds", "0"],
        cwd=workdir,
        env=sandbox_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 400
    try:
        while time.monotonic() < deadline:
            checkpoints = list(runs.glob("*/*/checkpoint.json"))
            done = json.loads(checkpoints[0].read_bytes())["round"] if checkpoints else 0
            if done >= KILL_AFTER_ROUND:
                os.kill(run.pid, signal.SIGKILL)
                run.wait(timeout=30)
                return checkpoints[0].parent
            assert run.poll() is None, "the run ended before it could be killed"
            time.sleep(0.1)
        raise AssertionError(f"round {KILL_AFTER_ROUND} was never checkpointed")
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()


def _ledger_charges(run_dir: Path, site: str) -> list[dict[str, Any]]:
    (ledger,) = (run_dir / "sites" / site / "privacy").glob("*.ledger.jsonl")
    return [json.loads(line) for line in ledger.read_text(encoding="utf-8").splitlines()]


def _gauges(run_dir: Path, name: str) -> dict[str, float]:
    text = (run_dir / "metrics.prom").read_text(encoding="utf-8")
    return {
        s.labels["site"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


def test_a_killed_run_is_interrupted_then_resumed_to_the_end(tmp_path: Path) -> None:
    """Kill -9 after round 1; audit verify says interrupted; --resume finishes rounds 2-3; chains verify; no double charge."""
    demo = copy_demo(tmp_path / "demo")
    demo.spec.write_text(demo.spec.read_text(encoding="utf-8").replace("rounds: 10", f"rounds: {ROUNDS}"), "utf-8")
    demo.approve()
    runs = tmp_path / "runs"
    run_dir = _kill_mid_trial(demo.spec, runs, tmp_path)
    killed_round = max(e["payload"]["round"] for e in _events(run_dir / "audit.jsonl") if "round" in e["payload"])
    _, engine = recorded(run_dir)
    assert engine, "the killed run recorded its engine's processes"

    verified = _sandbox("audit", "verify", str(run_dir / "audit.jsonl"), "--format", "json", cwd=tmp_path)
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["run_state"] == "interrupted"
    assert not (run_dir / "report.json").exists()

    resumed = _sandbox(
        "run",
        "--resume",
        str(run_dir),
        "--metrics-port",
        "0",
        "--linger-seconds",
        "0",
        "--format",
        "json",
        cwd=tmp_path,
    )
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert f"Run {run_dir} was interrupted after round" in resumed.stderr.replace("\n", "")
    assert not [p for p in engine if alive(p)], "nothing the killed engine left runs any more"

    summary = json.loads(resumed.stdout)
    assert summary["state"] == "finished" and Path(summary["run_dir"]) == run_dir
    report = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    assert [r["round"] for r in report["rounds"]] == list(range(1, ROUNDS + 1))
    assert report["rounds_completed"] == ROUNDS and (run_dir / "model.pt").is_file()
    assert not (run_dir / "checkpoint.json").exists()

    events = _events(run_dir / "audit.jsonl")
    (resume_entry,) = [e for e in events if e["event"] == "trial-resumed"]
    done = resume_entry["payload"]["last_completed_round"]
    assert done >= KILL_AFTER_ROUND and done <= killed_round
    assert [e["event"] for e in events].count("trial-started") == 1
    assert verify_chain(run_dir / "audit.jsonl").ok
    verified_again = _sandbox(
        "audit", "verify", str(run_dir / "audit.jsonl"), "--report", str(run_dir / "report.json"), cwd=tmp_path
    )
    assert verified_again.returncode == 0 and "run finished" in verified_again.stdout, verified_again.stdout

    spent = _gauges(run_dir, "sandbox_privacy_trial_epsilon_spent")
    for site in DEMO_SITES:
        assert verify_chain(run_dir / "sites" / site / "audit.jsonl").ok, site
        charges = _ledger_charges(run_dir, site)
        releases = [(c.get("release", "dp-sgd"), c.get("statistic", ""), c["round"]) for c in charges]
        assert len(releases) == len(set(releases)), f"{site}: a release charged twice: {releases}"
        training = [c["round"] for c in charges if c.get("release", "dp-sgd") == "dp-sgd"]
        assert training == list(range(1, ROUNDS + 1)), f"{site}: one training charge per round"
        (privacy,) = [s["privacy"] for s in report["sites"] if s["site_id"] == site]
        assert privacy["trial_epsilon"] == charges[-1]["trial_epsilon"] == spent[site]
        assert privacy["epsilon_spent"] == charges[-1]["cumulative_epsilon"]
