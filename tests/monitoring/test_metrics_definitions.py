"""What a regulator's Prometheus sees from SandboxMetrics: names, labels, values."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitoring.metrics import TRIAL_STATES, SandboxMetrics
from tests.monitoring.known_trial import REASONS, RULES, RUN_ID, SITES, TRIAL_ID, populate

EXPOSED_NAMES = (
    "sandbox_privacy_epsilon_spent",
    "sandbox_privacy_epsilon_budget",
    "sandbox_privacy_delta",
    "sandbox_privacy_budget_used_ratio",
    "sandbox_privacy_budget_exhausted",
    "sandbox_privacy_trial_epsilon_spent",
    "sandbox_privacy_trial_epsilon_budget",
    "sandbox_rounds_completed_total",
    "sandbox_round",
    "sandbox_round_duration_seconds",
    "sandbox_participants_active",
    "sandbox_site_accuracy",
    "sandbox_global_accuracy",
    "sandbox_site_loss",
    "sandbox_global_auroc",
    "sandbox_global_auroc_sites",
    "sandbox_global_auroc_test_records",
    "sandbox_fairness_accuracy_gap",
    "sandbox_fairness_accuracy_gap_noise_std",
    "sandbox_updates_rejected_total",
    "sandbox_policy_violations_total",
    "sandbox_small_cell_suppressed_total",
    "sandbox_trial_state",
    "sandbox_secure_aggregation_enabled",
    "sandbox_audit_entries_total",
    "sandbox_audit_head_info",
    "sandbox_build_info",
)
SITE_NAMES = {
    name
    for name in EXPOSED_NAMES
    if "privacy" in name or "site_" in name or name.endswith(("rejected_total", "violations_total", "suppressed_total"))
}

Samples = dict[str, list[tuple[dict[str, str], float]]]


def samples(registry: CollectorRegistry) -> Samples:
    """Exposition of ``registry`` parsed back: sample name -> [(labels, value)]."""
    found: Samples = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    """The one sample of ``name`` whose labels include ``labels``, or None."""
    matches = [v for have, v in samples(registry).get(name, []) if labels.items() <= have.items()]
    assert len(matches) <= 1, matches
    return matches[0] if matches else None


def test_fresh_registry_describes_every_metric(registry: CollectorRegistry, metrics: SandboxMetrics) -> None:
    """A regulator sees HELP and TYPE for every sandbox metric as soon as the trial is set up."""
    text = generate_latest(registry).decode()
    for name in EXPOSED_NAMES:
        assert f"# HELP {name} " in text and f"# TYPE {name} " in text, name


def test_counters_start_at_zero_for_every_site_reason_and_rule(
    registry: CollectorRegistry, metrics: SandboxMetrics
) -> None:
    """increase() alerts see the first rejection or violation because every counter exists at 0."""
    found = samples(registry)
    base = {"trial": TRIAL_ID, "run_id": RUN_ID}
    for (site, jurisdiction), reason in itertools.product(SITES, REASONS):
        labels = {**base, "site": site, "jurisdiction": jurisdiction, "reason": reason}
        assert (labels, 0.0) in found["sandbox_updates_rejected_total"]
    for (site, jurisdiction), rule in itertools.product(SITES, RULES):
        labels = {**base, "site": site, "jurisdiction": jurisdiction, "rule": rule}
        assert (labels, 0.0) in found["sandbox_policy_violations_total"]
    for site, jurisdiction in SITES:
        labels = {**base, "site": site, "jurisdiction": jurisdiction}
        assert (labels, 0.0) in found["sandbox_small_cell_suppressed_total"]
    assert found["sandbox_rounds_completed_total"] == [(base, 0.0)]
    assert found["sandbox_audit_entries_total"] == [(base, 0.0)]
    assert value(registry, "sandbox_trial_state", sandbox_trial_state="planned") == 1.0


def test_measured_values_are_absent_until_measured(registry: CollectorRegistry, metrics: SandboxMetrics) -> None:
    """An unmeasured (or small-cell suppressed) statistic is missing, never a misleading 0."""
    found = samples(registry)
    for name in (
        "sandbox_site_accuracy",
        "sandbox_site_loss",
        "sandbox_global_accuracy",
        "sandbox_privacy_epsilon_spent",
        "sandbox_fairness_accuracy_gap",
        "sandbox_fairness_accuracy_gap_noise_std",
        "sandbox_audit_head_info",
    ):
        assert name not in found, name
    metrics.suppress_small_cell("karolinska")
    assert value(registry, "sandbox_small_cell_suppressed_total", site="karolinska") == 4.0, "4 statistics a round"
    metrics.suppress_small_cell("karolinska")
    assert value(registry, "sandbox_small_cell_suppressed_total", site="karolinska") == 8.0, "and every round"
    assert "sandbox_site_accuracy" not in samples(registry)


def test_every_series_carries_trial_and_site_labels(registry: CollectorRegistry, metrics: SandboxMetrics) -> None:
    """Every series names its trial and run; site series also name the site and its jurisdiction."""
    populate(metrics)
    found = samples(registry)
    for name in EXPOSED_NAMES:
        series = found.get(name) or found.get(f"{name}_count")
        assert series, name
        for labels, _ in series:
            assert labels["trial"] == TRIAL_ID and labels["run_id"] == RUN_ID, (name, labels)
            if name in SITE_NAMES:
                assert (labels["site"], labels["jurisdiction"]) in SITES, (name, labels)


def test_setters_record_values_in_base_units(registry: CollectorRegistry, metrics: SandboxMetrics) -> None:
    """The values a caller records are the values exported, in base units."""
    populate(metrics)
    assert value(registry, "sandbox_privacy_epsilon_spent", site="aphp") == 2.5
    assert value(registry, "sandbox_privacy_epsilon_budget", site="aphp", jurisdiction="FR") == 4.0
    assert value(registry, "sandbox_privacy_delta", site="aphp") == 1e-5
    assert value(registry, "sandbox_round") == 3.0
    assert value(registry, "sandbox_rounds_completed_total") == 1.0
    assert value(registry, "sandbox_round_duration_seconds_sum") == 12.5
    assert value(registry, "sandbox_round_duration_seconds_bucket", le="30.0") == 1.0
    assert value(registry, "sandbox_participants_active") == 3.0
    assert value(registry, "sandbox_site_accuracy", site="charite", split="test") == 0.96
    assert value(registry, "sandbox_global_accuracy", split="test") == 0.95
    assert value(registry, "sandbox_global_auroc", split="test") == 0.98
    assert value(registry, "sandbox_global_auroc_sites", split="test") == 2.0
    assert value(registry, "sandbox_global_auroc_test_records", split="test") == 72.0
    assert value(registry, "sandbox_fairness_accuracy_gap") == 0.05
    assert value(registry, "sandbox_fairness_accuracy_gap_noise_std") == 0.02
    assert value(registry, "sandbox_updates_rejected_total", site="aphp", reason="norm_bound") == 1.0
    assert value(registry, "sandbox_policy_violations_total", site="karolinska", rule="min_cohort_size") == 1.0
    assert value(registry, "sandbox_secure_aggregation_enabled") == 1.0
    states = {labels["sandbox_trial_state"]: v for labels, v in samples(registry)["sandbox_trial_state"]}
    assert states == {state: float(state == "running") for state in TRIAL_STATES}
    ((build_labels, _),) = samples(registry)["sandbox_build_info"]
    assert build_labels["version"] and build_labels["flwr"]


def test_audit_head_shows_only_the_current_hash(registry: CollectorRegistry, metrics: SandboxMetrics) -> None:
    """A regulator sees exactly one audit head, the newest, and the entry count follows the chain."""
    metrics.set_audit_head("a" * 64, 3)
    metrics.set_audit_head("b" * 64, 7)
    metrics.set_audit_head("b" * 64, 7)
    heads = samples(registry)["sandbox_audit_head_info"]
    assert heads == [({"trial": TRIAL_ID, "run_id": RUN_ID, "hash": "b" * 64}, 1.0)]
    assert value(registry, "sandbox_audit_entries_total") == 7.0
    with pytest.raises(ValueError, match="went down"):
        metrics.set_audit_head("c" * 64, 6)
    with pytest.raises(ValueError, match="audit hash"):
        metrics.set_audit_head("not a hash", 8)


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.set_privacy("unknown", epsilon_spent=1.0, epsilon_budget=2.0, delta=1e-5),
        lambda m: m.set_site_metrics("unknown", "test", accuracy=0.9, loss=0.1),
        lambda m: m.reject_update("unknown", "norm_bound"),
        lambda m: m.record_violation("unknown", "min_cohort_size"),
        lambda m: m.suppress_small_cell("unknown"),
    ],
    ids=["privacy", "site_metrics", "reject", "violation", "suppress"],
)
def test_unknown_site_is_rejected(
    registry: CollectorRegistry, metrics: SandboxMetrics, call: Callable[[SandboxMetrics], None]
) -> None:
    """A site outside the trial cannot create a new label value (keeps cardinality bounded)."""
    before = generate_latest(registry)
    with pytest.raises(ValueError, match="unknown site 'unknown'"):
        call(metrics)
    assert generate_latest(registry) == before


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m.reject_update("aphp", "free text from a participant"), "unknown reason"),
        (lambda m: m.record_violation("aphp", "no_such_rule"), "unknown rule"),
        (lambda m: m.set_site_metrics("aphp", "validation", accuracy=0.9, loss=0.1), "unknown split"),
        (lambda m: m.set_state("paused"), "unknown trial state"),
        (lambda m: m.set_site_metrics("aphp", "test", accuracy=1.5, loss=0.1), "accuracy"),
        (lambda m: m.set_privacy("aphp", epsilon_spent=-1.0, epsilon_budget=2.0, delta=1e-5), "epsilon_spent"),
        (lambda m: m.set_global_metrics("test", accuracy=math.nan, auroc=0.9), "accuracy"),
        (lambda m: m.finish_round(1, 2.0, 4), "participants"),
    ],
    ids=["reason", "rule", "split", "state", "accuracy>1", "negative-epsilon", "nan", "too-many-participants"],
)
def test_unknown_labels_and_impossible_values_are_rejected(
    metrics: SandboxMetrics, call: Callable[[SandboxMetrics], None], message: str
) -> None:
    """Free-text labels and impossible values raise instead of reaching a regulator's dashboard."""
    with pytest.raises(ValueError, match=message):
        call(metrics)


def test_duplicate_sites_are_rejected(registry: CollectorRegistry) -> None:
    """A site listed twice is a configuration mistake, reported at construction."""
    with pytest.raises(ValueError, match="site values must be unique"):
        SandboxMetrics(registry, trial_id="t", run_id="r", sites=[("a", "DE"), ("a", "FR")], reasons=[], rules=[])


def test_undefined_auroc_is_left_absent(registry: CollectorRegistry, metrics: SandboxMetrics) -> None:
    """An AUROC that cannot be computed is missing on the dashboard, not shown as 0."""
    metrics.set_global_metrics("test", accuracy=0.9, auroc=None)
    assert value(registry, "sandbox_global_accuracy", split="test") == 0.9
    assert "sandbox_global_auroc" not in samples(registry)


def test_budget_used_ratio_shows_both_budgets(registry: CollectorRegistry, metrics: SandboxMetrics) -> None:
    """A regulator sees, per site, how much of the trial's and of the dataset's budget is spent, as ratios."""
    metrics.set_privacy("aphp", epsilon_spent=2.0, epsilon_budget=8.0, delta=1e-5)
    metrics.set_trial_privacy("aphp", epsilon_spent=0.49, epsilon_budget=0.5)
    assert value(registry, "sandbox_privacy_budget_used_ratio", site="aphp", budget="dataset") == 0.25
    assert value(registry, "sandbox_privacy_budget_used_ratio", site="aphp", budget="trial") == pytest.approx(0.98)
    metrics.set_trial_privacy("aphp", epsilon_spent=0.0, epsilon_budget=0.0)
    assert value(registry, "sandbox_privacy_budget_used_ratio", site="aphp", budget="trial") == 1.0


def test_auroc_says_what_it_covers(registry: CollectorRegistry, metrics: SandboxMetrics) -> None:
    """The AUROC comes with the number of sites and test records it averages over; both must be possible."""
    metrics.set_global_metrics("test", accuracy=0.9, auroc=0.95, auroc_sites=2, auroc_test_records=72)
    assert value(registry, "sandbox_global_auroc_sites", split="test") == 2.0
    assert value(registry, "sandbox_global_auroc_test_records", split="test") == 72.0
    with pytest.raises(ValueError, match="auroc_sites"):
        metrics.set_global_metrics("test", accuracy=0.9, auroc=0.95, auroc_sites=4, auroc_test_records=72)
    with pytest.raises(ValueError, match="auroc_test_records"):
        metrics.set_global_metrics("test", accuracy=0.9, auroc=0.95, auroc_sites=1, auroc_test_records=0)


def test_participants_active_can_be_set_for_an_unfinished_round(
    registry: CollectorRegistry, metrics: SandboxMetrics
) -> None:
    """A round cut short (budget stop) still updates who trained in it, never beyond the trial's sites."""
    metrics.finish_round(1, 1.0, 3)
    metrics.set_participants_active(0)
    assert value(registry, "sandbox_participants_active") == 0.0
    with pytest.raises(ValueError, match="participants"):
        metrics.set_participants_active(4)


def test_empty_run_id_is_rejected(registry: CollectorRegistry) -> None:
    """Every series needs a run id: an empty one is a programming error, reported at construction."""
    with pytest.raises(ValueError, match="run_id"):
        SandboxMetrics(registry, trial_id="t", run_id="", sites=[("a", "DE")], reasons=[], rules=[])
