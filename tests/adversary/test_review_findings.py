"""The review's small findings: an empty Poisson batch, and record counts of suppressed sites in the report."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from prometheus_client import CollectorRegistry

from participants.model import build_model
from participants.site_floor import DpSettings
from participants.training import TrainSettings, train_locally
from sandbox.round_outcome import RoundOutcome, SiteRoundMetrics, pool
from sandbox.server_app import new_metrics
from sandbox.trial_recorder import TrialRecorder
from tests.adversary.hostile_coordinator import record_attack
from trialcore.spec_loading import load_spec

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.yaml"


def test_an_empty_poisson_batch_leaves_the_round_loss_finite() -> None:
    """DP-SGD on a tiny part draws empty Poisson batches; the round's loss and model stay finite (the update is not lost)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 3)).astype(np.float32)
    y = np.array([0, 1, 0, 1], dtype=np.float32)
    steps_run = 0
    for seed in range(8):
        model = build_model("logistic_regression", num_features=3, hidden_units=4, seed=seed)
        settings = TrainSettings(epochs=5, batch_size=2, learning_rate=0.1, seed=seed, secret_dp_randomness=False)
        result = train_locally(model, x, y, settings, dp=DpSettings(noise_multiplier=1.0, max_grad_norm=1.0))
        assert math.isfinite(result.mean_loss)
        assert all(torch.isfinite(p).all() for p in model.parameters())
        steps_run += result.steps
    assert steps_run == 8 * 5 * 2, "every step ran, the empty ones too"
    record_attack("empty Poisson batch (tiny train part)", "loss and update finite; the round is not lost")


def test_the_report_gives_no_counts_for_a_suppressed_site(tmp_path: Path) -> None:
    """A site suppressed as a small cell appears in report.json without its record counts."""
    registry = CollectorRegistry()
    loaded = load_spec(DEMO)
    recorder = TrialRecorder(
        loaded, tmp_path / "run", run_id="run", metrics=new_metrics(loaded, registry, run_id="run"), registry=registry
    )
    recorder.trial_started()
    outcome = RoundOutcome(server_round=1)
    outcome.sites = {
        s: SiteRoundMetrics(
            s,
            num_train=90,
            num_test=n,
            test_accuracy=0.9,
            test_loss=0.3,
            test_auroc=None,
            train_accuracy=0.9,
            train_loss=0.3,
        )
        for s, n in (("de-berlin", 30), ("fr-lyon", 30), ("gb-leeds", 30), ("ch-zurich", 7))
    }
    outcome.global_metrics = pool(list(outcome.sites.values()))
    recorder.round_started(1)
    recorder.round_finished(outcome)
    report = recorder.trial_finished(None)
    zurich = next(s for s in report["sites"] if s["site_id"] == "ch-zurich")
    assert zurich["suppressed"] is True and zurich["num_train"] is None and zurich["num_test"] is None
    berlin = next(s for s in report["sites"] if s["site_id"] == "de-berlin")
    assert (berlin["num_train"], berlin["num_test"]) == (90, 30)
    record_attack("report listing counts of a suppressed site", "counts withheld in report.json")
