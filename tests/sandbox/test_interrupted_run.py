"""A killed run says so: ``audit verify`` of a coordinator chain without its final entry reports ``interrupted``.

A run killed with ``kill -9`` leaves an intact chain (atomic appends), indistinguishable by its
hashes from a finished one; its end is the final ``trial-finished`` entry and report.json.
"""

from __future__ import annotations

import json
from pathlib import Path

from prometheus_client import CollectorRegistry
from typer.testing import CliRunner

from sandbox.cli import app
from sandbox.server_app import new_metrics
from sandbox.trial_recorder import TrialRecorder
from trialcore.spec_loading import load_spec

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.yaml"


def _recorder(run_dir: Path) -> TrialRecorder:
    loaded = load_spec(DEMO)
    registry = CollectorRegistry()
    return TrialRecorder(
        loaded, run_dir, run_id="run", metrics=new_metrics(loaded, registry, run_id="run"), registry=registry
    )


def test_a_run_killed_before_its_final_entry_is_reported_interrupted(tmp_path: Path) -> None:
    """The chain of a run that started round 1 and died verifies intact (exit 0) and says ``interrupted``."""
    recorder = _recorder(tmp_path / "run")
    recorder.trial_started()
    recorder.round_started(1)
    chain = tmp_path / "run" / "audit.jsonl"
    result = CliRunner().invoke(app, ["audit", "verify", str(chain)])
    assert result.exit_code == 0, result.output
    assert f"{chain}: intact, " in result.stdout
    assert "run interrupted: no final entry and no report.json" in result.stdout
    as_json = CliRunner().invoke(app, ["audit", "verify", str(chain), "--format", "json"])
    assert json.loads(as_json.stdout)["run_state"] == "interrupted"


def test_a_finished_run_is_reported_finished(tmp_path: Path) -> None:
    """After the final entry and report.json the same command reports the end state, not interrupted."""
    recorder = _recorder(tmp_path / "run")
    recorder.trial_started()
    recorder.trial_finished(None)
    chain = tmp_path / "run" / "audit.jsonl"
    result = CliRunner().invoke(app, ["audit", "verify", str(chain), "--format", "json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["run_state"] == "finished"
    (tmp_path / "run" / "report.json").unlink()
    text = CliRunner().invoke(app, ["audit", "verify", str(chain)])
    assert "run ended but report.json is missing" in text.stdout


def test_a_site_chain_has_no_run_state(tmp_path: Path) -> None:
    """A site's chain is not a run's coordinator chain: no run state is claimed for it."""
    chain = tmp_path / "site.jsonl"
    from trialcore.audit_chain import AuditChain

    AuditChain.open(chain, actor="site:de-berlin", trial_id="t", spec_hash="0" * 64).append("round-trained", {})
    result = CliRunner().invoke(app, ["audit", "verify", str(chain), "--format", "json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["run_state"] is None
