"""The parts of ``sandbox run --resume``: checkpoint, recorder state, enforcement replay, run checks, leftovers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord
from prometheus_client import CollectorRegistry

from sandbox.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from sandbox.enforcement import Enforcer, Incident, Ladder
from sandbox.engine_processes import EngineWatch, alive, end_leftovers, recorded
from sandbox.recorder_state import recorder_state, restore_recorder
from sandbox.run_resume import end_interrupted_leftovers, resume_point
from sandbox.server_app import new_metrics
from sandbox.trial_recorder import TrialRecorder
from trialcore.errors import BadInputError, IntegrityError
from trialcore.spec_loading import load_spec

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.yaml"
LABELS = {"trial": "cancer-risk-demo", "run_id": "run"}


def _recorder(run_dir: Path) -> tuple[TrialRecorder, CollectorRegistry]:
    loaded = load_spec(DEMO)
    registry = CollectorRegistry()
    metrics = new_metrics(loaded, registry, run_id="run")
    return TrialRecorder(loaded, run_dir, run_id="run", metrics=metrics, registry=registry), registry


def _round_entry(server_round: int) -> dict[str, object]:
    return {
        "round": server_round,
        "duration_seconds": 1.5,
        "trained_sites": ["de-berlin", "fr-lyon"],
        "refusals": [],
        "rejections": [{"site_id": "fr-lyon", "reason": "non-finite", "detail": "NaN"}],
        "aggregated": True,
        "sites": {"de-berlin": {"num_train": 90, "num_test": 30, "test_accuracy": 0.9, "test_loss": 0.3}},
        "suppressed_sites": ["gb-leeds"],
        "global": {"test_accuracy": 0.91, "test_auroc": 0.95, "auroc_sites": 1, "auroc_num_test": 30},
        "fairness_accuracy_gap": 0.0,
        "site_audit_entries": {},
    }


def test_a_checkpoint_keeps_the_global_models_exact_bytes(tmp_path: Path) -> None:
    """The model saved after a round comes back byte for byte (sites hash it: a repeated question must match)."""
    arrays = ArrayRecord({"w": Array(np.array([0.1, 1 / 3, -2e-38], dtype=np.float32))})
    save_checkpoint(tmp_path, Checkpoint(DEMO, "a" * 64, 2, arrays, {"rounds": []}))
    loaded = load_checkpoint(tmp_path)
    assert loaded is not None and loaded.round == 2 and loaded.spec_path == DEMO and loaded.arrays is not None
    assert loaded.arrays["w"].data == arrays["w"].data and loaded.arrays["w"].shape == arrays["w"].shape
    (tmp_path / "checkpoint.json").write_text('{"schema": "sandbox-checkpoint/1", "arrays": "!!"}', encoding="utf-8")
    with pytest.raises(IntegrityError):
        load_checkpoint(tmp_path)


def test_a_restored_recorder_reports_the_whole_run_and_rebuilds_its_metrics(tmp_path: Path) -> None:
    """Rounds, suppressions, incidents and privacy of the killed run reach the resumed report and its fresh metrics."""
    first, _ = _recorder(tmp_path / "a")
    first.rounds = [_round_entry(1), _round_entry(2)]
    first.suppressed_sites = {"gb-leeds"}
    first.privacy = {
        "fr-lyon": {
            "epsilon_spent": 0.2,
            "epsilon_budget": 8.0,
            "trial_epsilon": 0.2,
            "trial_epsilon_budget": 0.5,
            "delta": 1e-5,
            "last_charged_round": 2,
        }
    }
    first.budget_exhausted_sites = {"ch-zurich": 2}
    state = json.loads(json.dumps(recorder_state(first)))
    second, registry = _recorder(tmp_path / "b")
    restore_recorder(second, state)
    assert second.rounds == first.rounds and second.started_at == first.started_at
    assert second.aggregated_rounds == 2
    site = {**LABELS, "site": "fr-lyon", "jurisdiction": "FR"}
    assert registry.get_sample_value("sandbox_rounds_completed_total", LABELS) == 2
    assert registry.get_sample_value("sandbox_updates_rejected_total", {**site, "reason": "non-finite"}) == 2
    assert registry.get_sample_value("sandbox_privacy_trial_epsilon_spent", site) == 0.2
    report = second.trial_finished(None)
    assert [r["round"] for r in report["rounds"]] == [1, 2]
    leeds = next(s for s in report["sites"] if s["site_id"] == "gb-leeds")
    assert leeds["suppressed"] and leeds["num_test"] is None


def test_an_incident_of_a_clause_no_rule_names_is_audited_not_a_crash(tmp_path: Path) -> None:
    """A site naming a clause outside the rule labels (hostile text) cannot crash the coordinator's metrics."""
    recorder, _ = _recorder(tmp_path / "run")
    incident = Incident("t", 1, "fr-lyon", "made-up-clause", "major", "warn", "detail", "t", against="trial")
    recorder.incident_recorded(incident)
    assert recorder.incidents[-1]["rule"] == "made-up-clause"


def test_replayed_incidents_of_completed_rounds_keep_an_exclusion(tmp_path: Path) -> None:
    """A resumed run counts the violations of its completed rounds again, not those of the round it redoes."""
    ladder = Ladder(exclude_after_violations=1, exclusion_rounds=2)
    Enforcer(tmp_path, ladder).violation(2, "gb-leeds", "non-finite", "NaN")
    Enforcer(tmp_path, ladder).violation(3, "fr-lyon", "non-finite", "NaN")
    replayed = Enforcer(tmp_path, ladder)
    replayed.replay(until_round=2)
    assert replayed.excluded("gb-leeds", 3) and replayed.excluded("gb-leeds", 4)
    assert not replayed.excluded("fr-lyon", 4) and replayed.trial_violations == 1


def test_only_an_interrupted_run_whose_coordinator_is_gone_can_be_resumed(tmp_path: Path) -> None:
    """A missing chain or a finished run is bad input (exit 2); a damaged chain is an integrity failure (exit 5)."""
    with pytest.raises(BadInputError, match="Cannot resume"):
        resume_point(tmp_path / "nowhere")
    recorder, _ = _recorder(tmp_path / "run")
    recorder.trial_started()
    save_checkpoint(tmp_path / "run", Checkpoint(DEMO, load_spec(DEMO).spec_hash, 0, None, recorder_state(recorder)))
    point = resume_point(tmp_path / "run")
    assert point.last_completed_round == 0 and point.spec_path == DEMO
    recorder.trial_finished(None)
    with pytest.raises(BadInputError) as finished:
        resume_point(tmp_path / "run")
    assert finished.value.problems[0].found == "the run ended (finished)"
    chain = tmp_path / "run" / "audit.jsonl"
    chain.write_text(chain.read_text().replace('"trial-started"', '"trial-startex"'), encoding="utf-8")
    with pytest.raises(IntegrityError):
        resume_point(tmp_path / "run")


COORDINATOR = """
import subprocess, sys, time
from pathlib import Path
from sandbox.engine_processes import EngineWatch
engine = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
watch = EngineWatch(Path(sys.argv[1])).__enter__()
watch.poll()
print(engine.pid, flush=True)
time.sleep(600)
"""


def test_a_killed_runs_leftover_processes_are_ended_and_nothing_else(tmp_path: Path) -> None:
    """A coordinator killed with -9 leaves its engine running; the next run ends it, never while the coordinator lives."""
    run_dir = tmp_path / "runs" / "cancer-risk-demo" / "run"
    run_dir.mkdir(parents=True)
    repo = str(Path(__file__).resolve().parents[2])
    coordinator = subprocess.Popen(
        [sys.executable, "-c", COORDINATOR, str(run_dir)], cwd=repo, stdout=subprocess.PIPE, text=True
    )
    try:
        assert coordinator.stdout is not None
        engine_pid = int(coordinator.stdout.readline())
        recorded_coordinator, engine = recorded(run_dir)
        assert recorded_coordinator is not None and recorded_coordinator.pid == coordinator.pid
        assert [p.pid for p in engine] == [engine_pid]
        assert end_interrupted_leftovers(run_dir.parent) == {}, "nothing is ended while the coordinator lives"
        assert alive(engine[0])
        coordinator.kill()
        coordinator.wait()
        assert alive(engine[0]), "the engine outlives its killed coordinator"
        ended = end_interrupted_leftovers(run_dir.parent)
        assert [p.pid for p in ended[run_dir]] == [engine_pid]
        assert not alive(engine[0])
        assert end_leftovers(run_dir) == [], "ended once"
    finally:
        coordinator.kill()
        coordinator.communicate()
        for process in recorded(run_dir)[1]:
            if alive(process):
                os.kill(process.pid, signal.SIGKILL)


def test_a_coordinator_that_ends_leaves_no_record(tmp_path: Path) -> None:
    """The record is only for a killed coordinator: a block that ends removes it."""
    with EngineWatch(tmp_path):
        assert recorded(tmp_path)[0] is not None
    assert not (tmp_path / "engine-processes.json").exists()
