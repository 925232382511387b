"""Issue 18, item 4: a trial whose engine cannot start, or whose site never answers, ends within its bound.

Each ends ``failed`` with the cause in report.json and the audit chain (intact, final entry
written), exit 6 (a service the trial needs is unreachable), and nothing half-written in its
run folder. Both use small bounds (``sandbox run --timeout``); the defaults are in the README.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from sandbox import trial_run
from sandbox.consent import clear_trial
from sandbox.resolved_trial import resolve_trial
from sandbox.run_state import run_state
from sandbox.site_failures import FAILURE_EXIT_CODES
from sandbox.time_bounds import TimeBounds
from tests.approved_demo import approved_demo_at
from tests.integration.conftest import REPO, SANDBOX, sandbox_env
from tests.integration.hostile_sites import make_silent_client_app
from trialcore.audit_verify import verify_chain
from trialcore.errors import ExitCode
from trialcore.spec_loading import load_spec

pytestmark = pytest.mark.integration

ENGINE_STOP_SECONDS = 10.0
FIRST_REPLY_SECONDS = 20.0
RAY_START_ALLOWANCE_SECONDS = 60.0
"""Ray's own start-up on a loaded 2-core machine, before any bound of ours runs."""


def _events(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "audit.jsonl").read_text(encoding="utf-8").splitlines()]


def _assert_ended_whole(run_dir: Path, kind: str) -> dict[str, Any]:
    """The run folder says failed with ``kind``, its chain is intact and ends, no temp or checkpoint file is left."""
    report: dict[str, Any] = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    assert report["state"] == "failed" and report["failure"]["kind"] == kind, report["failure"]
    assert verify_chain(run_dir / "audit.jsonl").ok
    assert run_state(run_dir / "audit.jsonl") == "failed"
    events = [e["event"] for e in _events(run_dir)]
    # The sites that did answer were charged for what they released (feature statistics): the
    # run reconciles their epsilon with their ledgers between its failure and its last entry.
    ending = [event for event in events[events.index("trial-failed") :] if event != "privacy-reconciled"]
    assert ending == ["trial-failed", "trial-finished"], events[-4:]
    assert not (run_dir / "checkpoint.json").exists(), "the checkpoint goes once the run has ended"
    leftovers = [p.name for p in run_dir.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]
    assert not [name for name in leftovers if not name.endswith(".lock")], leftovers
    return report


def test_an_engine_that_cannot_start_ends_at_once_with_exit_6(tmp_path: Path) -> None:
    """Ray cannot place one simulated site (1,000 CPUs each): exit 6 well before the first-reply bound, failure recorded."""
    demo = approved_demo_at(tmp_path / "demo")
    started = time.monotonic()
    done = subprocess.run(
        [
            str(SANDBOX),
            "run",
            str(demo.spec),
            "--cpus-per-site",
            "1000",
            "--timeout",
            "first-reply=300",
            "--timeout",
            f"engine-stop={ENGINE_STOP_SECONDS:g}",
            "--metrics-port",
            "0",
            "--linger-seconds",
            "0",
            "--runs-root",
            str(tmp_path / "runs"),
            "--format",
            "json",
        ],
        cwd=tmp_path,
        env=sandbox_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == int(ExitCode.SERVICE_UNAVAILABLE), done.stderr[-3000:]
    assert elapsed < RAY_START_ALLOWANCE_SECONDS + 2 * ENGINE_STOP_SECONDS, f"took {elapsed:.0f} s"
    assert "Traceback" not in done.stderr
    summary = json.loads(done.stdout)
    assert summary["ok"] is False and summary["failure"]["kind"] == "engine-unavailable"
    assert "ActorPool is empty" in summary["failure"]["summary"]
    report = _assert_ended_whole(Path(summary["run_dir"]), "engine-unavailable")
    assert report["rounds_completed"] == 0 and all(s["privacy"]["trial_epsilon"] == 0.0 for s in report["sites"])
    assert "The trial failed: the engine stopped: ValueError: ActorPool is empty" in done.stderr


def test_a_site_that_never_answers_the_first_query_ends_at_the_bound(tmp_path: Path) -> None:
    """fr-lyon sleeps in its feature-query handler: the trial ends failed (site-unreachable, exit 6) at the first-reply bound."""
    demo = approved_demo_at(tmp_path / "demo")
    trial = resolve_trial(load_spec(demo.spec))
    bounds = TimeBounds(first_reply_seconds=FIRST_REPLY_SECONDS, engine_stop_seconds=ENGINE_STOP_SECONDS)
    started = time.monotonic()
    with pytest.MonkeyPatch.context() as patch:
        # The simulated sites are Ray workers: they import tests.integration.hostile_sites by name.
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH")))))
        patch.setattr(
            trial_run, "make_client_app", lambda settings: make_silent_client_app(settings, site_id="fr-lyon")
        )
        result = trial_run.run_in_simulation(
            trial, runs_root=tmp_path / "runs", metrics_port=0, clearance=clear_trial(trial), bounds=bounds
        )
    elapsed = time.monotonic() - started
    assert elapsed < RAY_START_ALLOWANCE_SECONDS + FIRST_REPLY_SECONDS + 2 * ENGINE_STOP_SECONDS, (
        f"took {elapsed:.0f} s"
    )
    report = _assert_ended_whole(result.run_dir, "site-unreachable")
    assert FAILURE_EXIT_CODES[report["failure"]["kind"]] == ExitCode.SERVICE_UNAVAILABLE
    errors = report["failure"]["site_errors"]
    assert errors and {e["phase"] for e in errors} == {"query"}
    assert all(e["cause"] == "no answer to the feature query within the first-reply bound of 20 s" for e in errors)
    assert report["rounds_completed"] == 0
    # The sites that answered released their feature statistics (charged); nothing was trained.
    charges = [
        json.loads(line)
        for ledger in (result.run_dir / "sites").glob("*/privacy/*.ledger.jsonl")
        for line in ledger.read_text(encoding="utf-8").splitlines()
    ]
    assert {charge["release"] for charge in charges} <= {"feature-statistics"}, "nothing was trained"
    assert all(charge["round"] == 0 for charge in charges)
