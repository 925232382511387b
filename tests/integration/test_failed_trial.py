"""A trial in which no site can take part fails loudly: exit 1, each site named once, a report that says so.

Every demo site's data has 30 features; the spec's model takes 31. Each site answers the feature-sum
query before round 1 with a site-internal error, and the trial stops there: no round, no privacy spent.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.approved_demo import DEMO_SITES, copy_demo
from tests.integration.conftest import SANDBOX, sandbox_env
from tests.participants.test_site_internal_error import misfit_spec
from trialcore.audit_verify import verify_chain

pytestmark = pytest.mark.integration

CAUSE = "its data has 30 features but the trial's model takes 31 (model.input_features)"


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """``sandbox run`` of the misfit spec (text output, as a user sees it) and its run folder."""
    root = tmp_path_factory.mktemp("failed-trial")
    demo = copy_demo(root / "demo")
    spec = misfit_spec(demo, root)
    done = subprocess.run(
        [
            str(SANDBOX),
            "run",
            str(spec),
            "--metrics-port",
            "0",
            "--linger-seconds",
            "0",
            "--runs-root",
            str(root / "runs"),
        ],
        cwd=root,
        env=sandbox_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    (run_dir,) = (root / "runs" / "cancer-risk-demo").iterdir()
    return done, run_dir


def audit(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "audit.jsonl").read_text(encoding="utf-8").splitlines()]


def test_sandbox_run_exits_1_naming_each_site_once(failed_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    """Exit 1 (an internal error); stderr says the trial failed and names each site once with its cause, no traceback."""
    done, _ = failed_run
    assert done.returncode == 1, done.stderr[-4000:]
    assert "The trial failed: 4 site error(s) before round 1." in done.stderr
    for site in DEMO_SITES:
        assert len(re.findall(rf"\b{site}\b", done.stderr)) == 1, done.stderr
        assert f"  site {site}: {CAUSE}" in done.stderr
    assert "Traceback" not in done.stderr
    assert "engine.log" in done.stderr


def test_report_and_audit_chain_record_the_failure(failed_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    """report.json says failed (not finished) with each site error; the intact chain has one entry per site error."""
    _, run_dir = failed_run
    report = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    assert report["state"] == "failed" and report["rounds_completed"] == 0
    assert report["failure"]["kind"] == "site-internal-error"
    assert sorted(e["site_id"] for e in report["failure"]["site_errors"]) == sorted(DEMO_SITES)
    assert {(e["phase"], e["server_round"], e["cause"]) for e in report["failure"]["site_errors"]} == {
        ("query", 0, CAUSE)
    }
    entries = audit(run_dir)
    failures = [e["payload"] for e in entries if e["event"] == "site-internal-error"]
    assert sorted(f["site_id"] for f in failures) == sorted(DEMO_SITES)
    assert [e["event"] for e in entries][-2:] == ["trial-failed", "trial-finished"]
    assert entries[-1]["payload"] == {"state": "failed", "rounds_completed": 0, "model_saved": False}
    assert not (run_dir / "model.pt").exists(), "an untrained model is no result"
    assert (run_dir / "engine.log").is_file()
    assert verify_chain(run_dir / "audit.jsonl").ok
    states = {
        sample.labels["sandbox_trial_state"]: sample.value
        for family in text_string_to_metric_families((run_dir / "metrics.prom").read_text(encoding="utf-8"))
        for sample in family.samples
        if sample.name == "sandbox_trial_state"
    }
    assert states["failed"] == 1.0 and states["finished"] == 0.0
