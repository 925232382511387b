"""The coordinator's evidence for a round: small-cell suppression, metrics and report agree."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from sandbox.round_outcome import RoundOutcome, SiteRoundMetrics, pool
from sandbox.server_app import new_metrics
from sandbox.trial_recorder import TrialRecorder
from trialcore.audit_verify import verify_chain
from trialcore.spec_loading import LoadedSpec, load_spec

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.yaml"


def site(site_id: str, num_test: int, accuracy: float) -> SiteRoundMetrics:
    return SiteRoundMetrics(
        site_id,
        num_train=3 * num_test,
        num_test=num_test,
        test_accuracy=accuracy,
        test_loss=0.3,
        test_auroc=0.9,
        train_accuracy=accuracy,
        train_loss=0.3,
    )


def demo_with_evaluation_noise(noise_multiplier: float) -> LoadedSpec:
    """The demo spec with another evaluation noise multiplier (how noisy the released accuracies are)."""
    loaded = load_spec(DEMO)
    privacy = loaded.spec.privacy.model_copy(update={"evaluation_noise_multiplier": noise_multiplier})
    return dataclasses.replace(loaded, spec=loaded.spec.model_copy(update={"privacy": privacy}))


def test_site_below_min_cohort_gets_no_series_and_is_counted(tmp_path: Path) -> None:
    """A site whose test part has fewer than 11 records gets no per-site series or report entry; each withheld statistic is counted every round."""
    registry = CollectorRegistry()
    loaded = demo_with_evaluation_noise(0.05)  # released accuracies precise enough for a fairness gap
    recorder = TrialRecorder(
        loaded,
        tmp_path / "run",
        run_id="run",
        metrics=new_metrics(loaded, registry, run_id="run"),
        registry=registry,
    )
    recorder.trial_started()
    for server_round in (1, 2):
        outcome = RoundOutcome(
            server_round=server_round, trained_sites=["de-berlin", "fr-lyon", "gb-leeds", "ch-zurich"]
        )
        outcome.sites = {
            s.site_id: s
            for s in (
                site("de-berlin", 31, 0.9),
                site("fr-lyon", 34, 1.0),
                site("gb-leeds", 38, 0.95),
                site("ch-zurich", 7, 0.5),
            )
        }
        outcome.global_metrics = pool(list(outcome.sites.values()))
        recorder.round_started(server_round)
        recorder.round_finished(outcome)
    report = recorder.trial_finished(None)

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"trial": "cancer-risk-demo", "run_id": "run", **labels})

    assert sample("sandbox_site_accuracy", site="ch-zurich", jurisdiction="CH", split="test") is None
    assert sample("sandbox_site_accuracy", site="gb-leeds", jurisdiction="GB", split="test") == 0.95
    # 2 rounds x 4 statistics (train/test accuracy and loss)
    assert sample("sandbox_small_cell_suppressed_total", site="ch-zurich", jurisdiction="CH") == 8.0
    assert sample("sandbox_small_cell_suppressed_total", site="gb-leeds", jurisdiction="GB") == 0.0
    assert sample("sandbox_fairness_accuracy_gap") == 1.0 - 0.9, "the gap covers released sites only"
    zurich = next(s for s in report["sites"] if s["site_id"] == "ch-zurich")
    assert zurich["suppressed"] is True and zurich["final"] is None
    assert "ch-zurich" not in report["rounds"][-1]["sites"]
    assert "ch-zurich" not in json.dumps(report["rounds"][-1]["sites"])
    on_disk = json.loads((tmp_path / "run" / "report.json").read_text())
    assert on_disk == report
    head = verify_chain(tmp_path / "run" / "audit.jsonl")
    assert head.ok and head.length == report["audit"]["coordinator"]["length"]
    assert sample("sandbox_audit_entries_total") == head.length


def test_rejections_and_skipped_rounds_are_counted_audited_and_reported(tmp_path: Path) -> None:
    """A rejected update is counted per site and reason, audited with its detail and listed in its round; a skip is audited."""
    registry = CollectorRegistry()
    recorder = TrialRecorder(
        load_spec(DEMO),
        tmp_path / "run",
        run_id="run",
        metrics=new_metrics(load_spec(DEMO), registry, run_id="run"),
        registry=registry,
    )
    recorder.trial_started()
    recorder.round_started(1)
    recorder.update_rejected(1, "gb-leeds", "norm-too-large", "L2 norm of the update 1e+06 exceeds the policy bound 10")
    recorder.update_rejected(1, "node-7", "site-refused", "no consent")
    recorder.round_skipped(1, accepted=2, required=3)
    recorder.round_finished(RoundOutcome(server_round=1, trained_sites=["de-berlin", "fr-lyon", "gb-leeds"]))
    recorder.round_started(2)
    recorder.round_finished(RoundOutcome(server_round=2))
    report = recorder.trial_finished(None)

    labels = {"trial": "cancer-risk-demo", "run_id": "run", "site": "gb-leeds", "jurisdiction": "GB"}
    assert registry.get_sample_value("sandbox_updates_rejected_total", {**labels, "reason": "norm-too-large"}) == 1.0
    assert registry.get_sample_value("sandbox_updates_rejected_total", {**labels, "reason": "non-finite"}) == 0.0
    first, second = report["rounds"]
    assert first["rejections"] == [
        {
            "site_id": "gb-leeds",
            "reason": "norm-too-large",
            "detail": "L2 norm of the update 1e+06 exceeds the policy bound 10",
        },
        {"site_id": "node-7", "reason": "site-refused", "detail": "no consent"},
    ]
    assert first["aggregated"] is False and second["aggregated"] is True and second["rejections"] == []
    events = [json.loads(line) for line in (tmp_path / "run" / "audit.jsonl").read_text().splitlines()]
    assert [
        (e["event"], e["payload"].get("site_id")) for e in events if e["event"] in ("update-rejected", "round-skipped")
    ] == [("update-rejected", "gb-leeds"), ("update-rejected", "node-7"), ("round-skipped", None)]
    assert verify_chain(tmp_path / "run" / "audit.jsonl").ok


def test_site_that_withholds_its_statistics_is_counted_as_suppressed(tmp_path: Path) -> None:
    """A site that withholds its evaluation (small cell) gets no per-site series; the coordinator counts each withheld statistic every round."""
    registry = CollectorRegistry()
    loaded = load_spec(DEMO)
    recorder = TrialRecorder(
        loaded, tmp_path / "run", run_id="run", metrics=new_metrics(loaded, registry, run_id="run"), registry=registry
    )
    recorder.trial_started()
    for server_round in (1, 2):
        outcome = RoundOutcome(server_round=server_round, trained_sites=["de-berlin", "fr-lyon", "gb-leeds"])
        outcome.sites = {
            s.site_id: s for s in (site("de-berlin", 31, 0.9), site("fr-lyon", 34, 1.0), site("gb-leeds", 38, 0.95))
        }
        outcome.withheld_sites = ["ch-zurich"]
        outcome.global_metrics = pool(list(outcome.sites.values()))
        recorder.round_started(server_round)
        recorder.round_finished(outcome)
    report = recorder.trial_finished(None)
    labels = {"trial": "cancer-risk-demo", "run_id": "run", "site": "ch-zurich", "jurisdiction": "CH"}
    assert registry.get_sample_value("sandbox_small_cell_suppressed_total", labels) == 8.0
    assert registry.get_sample_value("sandbox_site_accuracy", {**labels, "split": "test"}) is None
    assert report["rounds"][-1]["suppressed_sites"] == ["ch-zurich"]
    assert next(s for s in report["sites"] if s["site_id"] == "ch-zurich")["suppressed"] is True


def test_a_round_ended_by_a_budget_stop_shows_who_trained_in_it(tmp_path: Path) -> None:
    """Active participants is who trained in the last round, also when the trial stops inside that round."""
    registry = CollectorRegistry()
    loaded = load_spec(DEMO)
    recorder = TrialRecorder(
        loaded, tmp_path / "run", run_id="run", metrics=new_metrics(loaded, registry, run_id="run"), registry=registry
    )
    recorder.trial_started()
    recorder.round_started(1)
    recorder.round_finished(
        RoundOutcome(server_round=1, trained_sites=["de-berlin", "fr-lyon", "gb-leeds", "ch-zurich"])
    )
    active = {"trial": "cancer-risk-demo", "run_id": "run"}
    assert registry.get_sample_value("sandbox_participants_active", active) == 4.0
    recorder.round_started(2)
    for site_id in ("de-berlin", "fr-lyon", "gb-leeds"):
        recorder.update_rejected(2, site_id, "site-refused", "privacy-budget-exhausted: no budget left")
    recorder.update_rejected(2, "ch-zurich", "norm-too-large", "L2 norm 1e+06 > 10")
    recorder.round_skipped(2, accepted=0, required=3)  # the budget stop follows: no round_finished
    recorder.trial_finished(None, state="budget-exhausted")
    assert registry.get_sample_value("sandbox_participants_active", active) == 1.0, "ch-zurich trained, 3 refused"


def test_a_fairness_gap_made_of_noise_is_not_reported(tmp_path: Path) -> None:
    """With the demo's evaluation noise on 30-record test parts the gap is noise: no gap metric, null in the report, its noise stated."""
    registry = CollectorRegistry()
    loaded = load_spec(DEMO)
    recorder = TrialRecorder(
        loaded, tmp_path / "run", run_id="run", metrics=new_metrics(loaded, registry, run_id="run"), registry=registry
    )
    recorder.trial_started()
    outcome = RoundOutcome(server_round=1, trained_sites=["de-berlin", "fr-lyon"])
    outcome.sites = {s.site_id: s for s in (site("de-berlin", 30, 0.2), site("fr-lyon", 30, 1.0))}
    outcome.global_metrics = pool(list(outcome.sites.values()))
    recorder.round_started(1)
    recorder.round_finished(outcome)
    report = recorder.trial_finished(None)
    labels = {"trial": "cancer-risk-demo", "run_id": "run"}
    assert registry.get_sample_value("sandbox_fairness_accuracy_gap", labels) is None
    assert registry.get_sample_value("sandbox_fairness_accuracy_gap_noise_std", labels) == pytest.approx(
        2 * 40 * 2 / 30
    ), "the gap's noise is published: it says why the gap is not"
    last = report["rounds"][-1]
    assert last["fairness_accuracy_gap"] is None and report["final"]["fairness_accuracy_gap"] is None
    # sqrt(2) x 40 x 2 x sqrt(1 + 1) / 30: the noise of the better site's released accuracy, twice over
    assert last["fairness_accuracy_gap_noise_std"] == pytest.approx(2 * 40 * 2 / 30)
