"""How many series a large federation exports: the compact set above FULL_DETAIL_MAX_SITES sites."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from monitoring.cardinality import FULL_DETAIL_MAX_SITES, exports_full_detail
from monitoring.metrics import SandboxMetrics
from sandbox.server_app import POLICY_RULES, REJECTION_REASONS
from tests.monitoring.known_trial import REASONS, RULES, RUN_ID, SITES, TRIAL_ID, populate
from tests.monitoring.test_metrics_definitions import samples, value

SITE_SERIES_OF_COMPACT_TRIAL = {
    "sandbox_privacy_budget_used_ratio",
    "sandbox_site_accuracy",
    "sandbox_site_loss",
    "sandbox_updates_rejected_total",
    "sandbox_updates_rejected_created",
    "sandbox_policy_violations_total",
    "sandbox_policy_violations_created",
    "sandbox_small_cell_suppressed_total",
    "sandbox_small_cell_suppressed_created",
}


def compact(registry: CollectorRegistry) -> SandboxMetrics:
    """The known trial's metrics as a federation above the detail limit exports them."""
    return SandboxMetrics(
        registry, trial_id=TRIAL_ID, run_id=RUN_ID, sites=SITES, reasons=REASONS, rules=RULES, full_detail_max_sites=2
    )


def site_series(registry: CollectorRegistry) -> dict[str, int]:
    """Sample name -> how many samples carry a ``site`` label."""
    counts: dict[str, int] = {}
    for name, found in samples(registry).items():
        with_site = sum(1 for labels, _ in found if "site" in labels)
        if with_site:
            counts[name] = with_site
    return counts


def test_detail_limit_is_inclusive() -> None:
    """A federation of exactly FULL_DETAIL_MAX_SITES sites still exports every per-site series."""
    assert exports_full_detail(FULL_DETAIL_MAX_SITES)
    assert not exports_full_detail(FULL_DETAIL_MAX_SITES + 1)


def test_a_quiet_site_of_a_compact_trial_costs_no_series(registry: CollectorRegistry) -> None:
    """Before anything is measured or happens, a large federation exports no per-site series at all."""
    metrics = compact(registry)
    assert not metrics.detailed
    assert site_series(registry) == {}
    assert value(registry, "sandbox_trial_state", sandbox_trial_state="planned") == 1.0


def test_compact_trial_keeps_what_alerts_and_fairness_use(registry: CollectorRegistry) -> None:
    """Above the limit each site exports its budget-used ratios, test accuracy and loss, and its events only."""
    populate(compact(registry))
    counts = site_series(registry)
    assert set(counts) <= SITE_SERIES_OF_COMPACT_TRIAL, counts
    assert counts["sandbox_privacy_budget_used_ratio"] == 2 * len(SITES)
    assert counts["sandbox_site_accuracy"] == counts["sandbox_site_loss"] == 2, "test split of the 2 unsuppressed"
    assert value(registry, "sandbox_site_accuracy", site="charite", split="test") == 0.96
    assert value(registry, "sandbox_privacy_budget_used_ratio", site="aphp", budget="trial") == 2.0 / 2.5
    assert counts["sandbox_updates_rejected_total"] == counts["sandbox_policy_violations_total"] == 1
    assert value(registry, "sandbox_updates_rejected_total", site="aphp", reason="norm_bound") == 1.0
    assert value(registry, "sandbox_small_cell_suppressed_total", site="karolinska") == 4.0
    assert value(registry, "sandbox_global_accuracy", split="test") == 0.95, "trial-level series are unchanged"


def test_compact_trial_marks_budget_exhaustion_when_it_happens(registry: CollectorRegistry) -> None:
    """The exhaustion flag of a large federation appears at 1 for the site that ran out, and only for it."""
    metrics = compact(registry)
    metrics.set_budget_exhausted("aphp")
    assert samples(registry)["sandbox_privacy_budget_exhausted"] == [
        ({"trial": TRIAL_ID, "run_id": RUN_ID, "site": "aphp", "jurisdiction": "FR"}, 1.0)
    ]


def test_thousand_site_trial_exports_a_bounded_number_of_samples() -> None:
    """With every per-site value measured, 1,000 sites export at most 4 samples a site (was about 74)."""
    registry = CollectorRegistry()
    sites = [(f"site-{index:04d}", "DE") for index in range(1000)]
    metrics = SandboxMetrics(
        registry, trial_id=TRIAL_ID, run_id=RUN_ID, sites=sites, reasons=REJECTION_REASONS, rules=POLICY_RULES
    )
    for site, _ in sites:
        metrics.set_privacy(site, epsilon_spent=1.0, epsilon_budget=8.0, delta=1e-5)
        metrics.set_trial_privacy(site, epsilon_spent=0.1, epsilon_budget=0.5)
        for split in ("train", "test"):
            metrics.set_site_metrics(site, split, accuracy=0.9, loss=0.1)
    lines = [line for line in generate_latest(registry).decode().splitlines() if not line.startswith("#")]
    assert 4 * len(sites) <= len(lines) <= 4 * len(sites) + 40
