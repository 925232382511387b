"""The known trial the monitoring tests observe: three sites, one with a too-small test cohort."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from monitoring.metrics import SandboxMetrics

TRIAL_ID = "trial-0042"
RUN_ID = "20261130T051500000001Z"
SITES = (("charite", "DE"), ("aphp", "FR"), ("karolinska", "SE"))
REASONS = ("norm_bound", "malformed", "late")
RULES = ("min_cohort_size", "epsilon_budget", "data_residency")


def new_metrics(registry: CollectorRegistry) -> SandboxMetrics:
    """The metrics of the known trial, registered in ``registry``."""
    return SandboxMetrics(registry, trial_id=TRIAL_ID, run_id=RUN_ID, sites=SITES, reasons=REASONS, rules=RULES)


def populate(metrics: SandboxMetrics) -> SandboxMetrics:
    """Set every metric as after round 3 of a running trial; karolinska's test cohort is too small."""
    metrics.set_state("running")
    metrics.set_secure_aggregation(True)
    for index, (site, _) in enumerate(SITES):
        metrics.set_privacy(site, epsilon_spent=1.5 + index, epsilon_budget=4.0, delta=1e-5)
        metrics.set_trial_privacy(site, epsilon_spent=1.0 + index, epsilon_budget=2.5)
    metrics.start_round(3)
    metrics.finish_round(3, 12.5, 3)
    for site, accuracy in (("charite", 0.96), ("aphp", 0.91)):
        for split in ("train", "test"):
            metrics.set_site_metrics(site, split, accuracy=accuracy, loss=0.2)
    metrics.suppress_small_cell("karolinska")
    metrics.set_global_metrics("train", accuracy=0.97, auroc=0.99, auroc_sites=2, auroc_test_records=80)
    metrics.set_global_metrics("test", accuracy=0.95, auroc=0.98, auroc_sites=2, auroc_test_records=72)
    metrics.set_fairness_gap(0.05)
    metrics.set_fairness_gap_noise(0.02)
    metrics.reject_update("aphp", "norm_bound")
    metrics.record_violation("karolinska", "min_cohort_size")
    metrics.set_audit_head("9f2c" * 16, 17)
    return metrics
