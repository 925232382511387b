"""The report's epsilon is the ledger's epsilon, even when a site charged its ledger and then failed.

The issue's case: a site charged its ledger, then every round failed (non-finite data after the
charge); report.json and the metrics showed epsilon 0.0 while its ledger held three charges.
"""

from __future__ import annotations

import json
from pathlib import Path

from flwr.app import MetricRecord
from prometheus_client import CollectorRegistry

from participants.privacy_ledger import Charge, PlannedCharge, PrivacyLedger
from sandbox.server_app import new_metrics
from sandbox.trial_recorder import TrialRecorder
from trialcore import layout, wire
from trialcore.audit_verify import verify_chain
from trialcore.privacy_accountant import Accountant, Mechanism
from trialcore.spec_loading import load_spec

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.yaml"


def _charge(ledger: PrivacyLedger, server_round: int) -> Charge:
    return ledger.charge(
        PlannedCharge(
            site_id="fr-lyon",
            dataset="embedded-breast-cancer-1",
            trial_id="cancer-risk-demo",
            spec_hash="0" * 64,
            round=server_round,
            accountant=Accountant.RDP,
            mechanism=Mechanism(noise_multiplier=10.313, sample_rate=1 / 6, steps=6),
            delta=1e-5,
            epsilon_budget=8.0,
            trial_epsilon_budget=0.5,
        )
    )


def _reply_figures(charge: Charge) -> MetricRecord:
    return MetricRecord(
        {
            wire.EPSILON_SPENT: charge.cumulative_epsilon,
            wire.EPSILON_BUDGET: charge.epsilon_budget,
            wire.TRIAL_EPSILON: charge.trial_epsilon,
            wire.TRIAL_EPSILON_BUDGET: charge.trial_epsilon_budget,
            wire.PRIVACY_DELTA: charge.delta,
            wire.TRIAL_EPSILON_BY_RELEASE["dp-sgd"]: charge.trial_epsilon,
            wire.TRIAL_EPSILON_BY_RELEASE["feature-statistics"]: 0.0,
            wire.TRIAL_EPSILON_BY_RELEASE["evaluation"]: 0.0,
        }
    )


def test_charges_after_the_last_reply_show_in_report_and_metrics(tmp_path: Path) -> None:
    """A site that replied for round 1 but failed after charging rounds 2 and 3 is reported at its ledger's epsilon."""
    loaded = load_spec(DEMO)
    registry = CollectorRegistry()
    run_dir = tmp_path / "run"
    recorder = TrialRecorder(
        loaded, run_dir, run_id="run", metrics=new_metrics(loaded, registry, run_id="run"), registry=registry
    )
    recorder.trial_started()
    ledger = PrivacyLedger(
        layout.ledger_file(layout.simulated_site_dir(run_dir, "fr-lyon"), "embedded-breast-cancer-1")
    )
    first = _charge(ledger, 1)
    recorder.privacy_reported(1, "fr-lyon", _reply_figures(first))
    _charge(ledger, 2)
    last = _charge(ledger, 3)  # charged, then the round failed at the site: no reply carries these figures
    assert last.trial_epsilon > first.trial_epsilon

    report = recorder.trial_finished(None, state="finished")

    lyon = next(s for s in report["sites"] if s["site_id"] == "fr-lyon")["privacy"]
    assert lyon["trial_epsilon"] == last.trial_epsilon and lyon["epsilon_spent"] == last.cumulative_epsilon
    assert lyon["last_charged_round"] == 3 and lyon["epsilon_source"] == "site-ledger"
    assert json.loads((run_dir / "report.json").read_text())["sites"] == report["sites"]
    labels = {"trial": "cancer-risk-demo", "run_id": "run", "site": "fr-lyon", "jurisdiction": "FR"}
    assert registry.get_sample_value("sandbox_privacy_trial_epsilon_spent", labels) == last.trial_epsilon
    assert registry.get_sample_value("sandbox_privacy_epsilon_spent", labels) == last.cumulative_epsilon
    metrics_file = (run_dir / "metrics.prom").read_text()
    assert (
        f'sandbox_privacy_trial_epsilon_spent{{jurisdiction="FR",run_id="run",site="fr-lyon",trial="cancer-risk-demo"}} {last.trial_epsilon!r}'
        in metrics_file
    )
    events = [json.loads(line)["event"] for line in (run_dir / "audit.jsonl").read_text().splitlines()]
    assert "privacy-reconciled" in events and verify_chain(run_dir / "audit.jsonl").ok

    berlin = next(s for s in report["sites"] if s["site_id"] == "de-berlin")["privacy"]
    assert berlin["epsilon_source"] == "no-charge" and berlin["trial_epsilon"] == 0.0


def test_a_site_whose_replies_match_its_ledger_needs_no_correction(tmp_path: Path) -> None:
    """When every charge was reported, the report keeps the replies' figures and audits no correction."""
    loaded = load_spec(DEMO)
    registry = CollectorRegistry()
    run_dir = tmp_path / "run"
    recorder = TrialRecorder(
        loaded, run_dir, run_id="run", metrics=new_metrics(loaded, registry, run_id="run"), registry=registry
    )
    ledger = PrivacyLedger(
        layout.ledger_file(layout.simulated_site_dir(run_dir, "fr-lyon"), "embedded-breast-cancer-1")
    )
    charge = _charge(ledger, 1)
    recorder.privacy_reported(1, "fr-lyon", _reply_figures(charge))
    report = recorder.trial_finished(None)
    lyon = next(s for s in report["sites"] if s["site_id"] == "fr-lyon")["privacy"]
    assert lyon["trial_epsilon"] == charge.trial_epsilon and lyon["epsilon_source"] == "site-ledger"
    assert "privacy-reconciled" not in (run_dir / "audit.jsonl").read_text()


def test_a_damaged_ledger_is_reported_not_ignored(tmp_path: Path) -> None:
    """A ledger under the run folder that fails its check is named in the report and audited."""
    loaded = load_spec(DEMO)
    registry = CollectorRegistry()
    run_dir = tmp_path / "run"
    recorder = TrialRecorder(
        loaded, run_dir, run_id="run", metrics=new_metrics(loaded, registry, run_id="run"), registry=registry
    )
    path = layout.ledger_file(layout.simulated_site_dir(run_dir, "fr-lyon"), "embedded-breast-cancer-1")
    _charge(PrivacyLedger(path), 1)
    path.write_text(path.read_text().replace('"round":1', '"round":7'))
    report = recorder.trial_finished(None)
    lyon = next(s for s in report["sites"] if s["site_id"] == "fr-lyon")["privacy"]
    assert lyon["ledger_problem"] and "hash mismatch" in lyon["ledger_problem"]
    assert "privacy-ledger-unreadable" in (run_dir / "audit.jsonl").read_text()
