"""Generates ``monitoring/prometheus/alerts_test.yml`` from the series the exporter really emits.

Every input series of the promtool unit tests is looked up among the series of a fully populated
:class:`~monitoring.metrics.SandboxMetrics` built for the demo trial the way the coordinator builds
it (:func:`sandbox.server_app.new_metrics`): label names and values are never typed by hand, so a
renamed label or reason breaks generation instead of leaving tests about series nobody emits.
Expected annotations are rendered from ``alerts.yml`` itself. Each alert has a case where it fires
and one where it stays silent. Regenerate after changing rules or metrics::

    .venv/bin/python -m tests.monitoring.alert_cases > monitoring/prometheus/alerts_test.yml
"""

from __future__ import annotations

import functools
import re
import sys
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitoring.labels import BUDGETS, SPLITS, TRIAL_STATES
from sandbox.server_app import new_metrics
from trialcore.spec_loading import load_spec

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "examples" / "demo.yaml"
ALERTS = REPO / "monitoring" / "prometheus" / "alerts.yml"
RUNS = ("20261130T051500000001Z", "20261130T052000000002Z")
"""Two runs of the demo trial, in the format of :func:`sandbox.server_app.new_run_id`."""
TARGET = {"job": "sandbox", "instance": "127.0.0.1:9464"}
"""The labels Prometheus adds to every scraped series (shipped prometheus.yml)."""
SCRAPE_LABELS = frozenset(TARGET)

Labels = dict[str, str]


@functools.cache
def emitted_series(run_id: str) -> dict[str, list[Labels]]:
    """Series name -> label sets a fully populated demo trial exposes (every setter called)."""
    loaded = load_spec(DEMO)
    registry = CollectorRegistry()
    metrics = new_metrics(loaded, registry, run_id=run_id)
    for site in metrics.sites:
        metrics.set_privacy(site, epsilon_spent=1.0, epsilon_budget=8.0, delta=1e-5)
        metrics.set_trial_privacy(site, epsilon_spent=0.1, epsilon_budget=0.5)
        metrics.set_budget_exhausted(site)
        for split in SPLITS:
            metrics.set_site_metrics(site, split, accuracy=0.9, loss=0.1)
        metrics.suppress_small_cell(site)
    for split in SPLITS:
        metrics.set_global_metrics(split, accuracy=0.9, auroc=0.9, auroc_sites=1, auroc_test_records=11)
    metrics.start_round(1)
    metrics.finish_round(1, 1.0, 1)
    metrics.set_fairness_gap(0.0)
    metrics.set_fairness_gap_noise(0.0)
    metrics.set_secure_aggregation(False)
    metrics.set_audit_head("a" * 64, 1)
    found: dict[str, list[Labels]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            found.setdefault(sample.name, []).append(dict(sample.labels))
    return found


def series(name: str, run: int = 0, **match: str) -> Labels:
    """The one emitted label set of ``name`` in run ``run`` whose labels include ``match``."""
    candidates = [labels for labels in emitted_series(RUNS[run]).get(name, []) if match.items() <= labels.items()]
    if len(candidates) != 1:
        raise AssertionError(f"{name}{match}: {len(candidates)} emitted series match, need exactly 1")
    return candidates[0]


def selector(name: str, labels: Labels) -> str:
    inner = ", ".join(f'{key}="{value}"' for key, value in labels.items())
    return f"{name}{{{inner}}}"


def _humanize_percentage(value: float) -> str:
    text = f"{value * 100:.4g}"
    return f"{text}%"


def render(template: str, labels: Labels, value: float) -> str:
    """Prometheus' rendering of the annotation templates used in alerts.yml."""
    text = re.sub(r"\{\{ \$value \| humanizePercentage \}\}", _humanize_percentage(value), template)
    return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels.get(m.group(1), "<no value>"), text)


def rules() -> dict[str, dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


def expect(alert: str, labels: Labels, value: float = 1.0) -> dict[str, Any]:
    """The alert promtool must see: the series' labels plus severity, annotations rendered."""
    rule = rules()[alert]
    return {
        "exp_labels": {**labels, **rule["labels"]},
        "exp_annotations": {key: render(text, labels, value) for key, text in rule["annotations"].items()},
    }


def check(at: str, alert: str, *firing: dict[str, Any]) -> dict[str, Any]:
    return {"eval_time": at, "alertname": alert, "exp_alerts": list(firing)}


def without(labels: Labels, *names: str) -> Labels:
    return {key: value for key, value in labels.items() if key not in names}


def state_series(state: str, values: str, run: int = 0, **extra: str) -> dict[str, str]:
    labels = {**series("sandbox_trial_state", run, sandbox_trial_state=state), **extra}
    return {"series": selector("sandbox_trial_state", labels), "values": values}


def states(values_by_state: dict[str, str], run: int = 0, **extra: str) -> list[dict[str, str]]:
    """Every state series of a run, as the exporter emits them (the ones not given stay 0)."""
    length = len(next(iter(values_by_state.values())).split())
    zeros = " ".join(v if v in ("_", "stale") else "0" for v in next(iter(values_by_state.values())).split())
    assert len(zeros.split()) == length
    return [state_series(s, values_by_state.get(s, zeros), run, **extra) for s in TRIAL_STATES]


def cases() -> list[dict[str, Any]]:
    ratio = "sandbox_privacy_budget_used_ratio"
    berlin_trial = series(ratio, site="de-berlin", budget="trial")
    berlin_dataset = series(ratio, site="de-berlin", budget="dataset")
    lyon_dataset = series(ratio, site="fr-lyon", budget="dataset")
    exhausted = series("sandbox_privacy_budget_exhausted", site="gb-leeds")
    violations = series("sandbox_policy_violations_total", site="fr-lyon", rule="update-norm")
    norm = series("sandbox_updates_rejected_total", site="gb-leeds", reason="norm-too-large")
    refused = series("sandbox_updates_rejected_total", site="de-berlin", reason="site-refused")
    small = series("sandbox_small_cell_suppressed_total", site="ch-zurich")
    gap = series("sandbox_fairness_accuracy_gap")
    assert set(BUDGETS) == {"trial", "dataset"}
    return [
        {
            "name": "the trial budget warns at 80 % while the trial is under way, not once it has finished",
            "interval": "1m",
            "input_series": [
                {"series": selector(ratio, berlin_trial), "values": "0.5 0.98 0.98 0.98"},
                {"series": selector(ratio, berlin_dataset), "values": "0.05 0.06 0.06 0.06"},
                *states({"running": "1 1 1 0", "finished": "0 0 0 1"}),
            ],
            "alert_rule_test": [
                check("0m", "SandboxPrivacyBudgetNearlySpent"),
                check(
                    "1m",
                    "SandboxPrivacyBudgetNearlySpent",
                    expect("SandboxPrivacyBudgetNearlySpent", berlin_trial, 0.98),
                ),
                check("3m", "SandboxPrivacyBudgetNearlySpent"),
            ],
        },
        {
            "name": "the dataset budget warns at 80 % also after the trial finished; 100 % pages",
            "interval": "1m",
            "input_series": [
                {"series": selector(ratio, lyon_dataset), "values": "0.5 0.85 0.85 1"},
                *states({"running": "1 1 0 0", "finished": "0 0 1 1"}),
            ],
            "alert_rule_test": [
                check("0m", "SandboxPrivacyBudgetNearlySpent"),
                check(
                    "2m",
                    "SandboxPrivacyBudgetNearlySpent",
                    expect("SandboxPrivacyBudgetNearlySpent", lyon_dataset, 0.85),
                ),
                check("3m", "SandboxPrivacyBudgetNearlySpent"),
                check("2m", "SandboxPrivacyBudgetExhausted"),
                check(
                    "3m",
                    "SandboxPrivacyBudgetExhausted",
                    expect("SandboxPrivacyBudgetExhausted", without(lyon_dataset, "budget")),
                ),
            ],
        },
        {
            "name": "a site refusing a round for lack of budget pages",
            "interval": "1m",
            "input_series": [{"series": selector("sandbox_privacy_budget_exhausted", exhausted), "values": "0 0 1"}],
            "alert_rule_test": [
                check("1m", "SandboxPrivacyBudgetExhausted"),
                check("2m", "SandboxPrivacyBudgetExhausted", expect("SandboxPrivacyBudgetExhausted", exhausted)),
            ],
        },
        {
            "name": "a trial stopped for privacy budget pages",
            "interval": "1m",
            "input_series": states({"running": "1 0", "budget-exhausted": "0 1"}),
            "alert_rule_test": [
                check("0m", "SandboxTrialStoppedForPrivacyBudget"),
                check(
                    "1m",
                    "SandboxTrialStoppedForPrivacyBudget",
                    expect(
                        "SandboxTrialStoppedForPrivacyBudget",
                        series("sandbox_trial_state", sandbox_trial_state="budget-exhausted"),
                    ),
                ),
            ],
        },
        {
            "name": "a policy violation alerts at once and clears after 5 quiet minutes",
            "interval": "1m",
            "input_series": [
                {"series": selector("sandbox_policy_violations_total", violations), "values": "0 0 1 1 1 1 1 1 1 1"}
            ],
            "alert_rule_test": [
                check("1m", "SandboxPolicyViolation"),
                check("2m", "SandboxPolicyViolation", expect("SandboxPolicyViolation", violations)),
                check("9m", "SandboxPolicyViolation"),
            ],
        },
        {
            "name": "updates failing screening are misbehaviour; a site's refusal is a lawful decline",
            "interval": "1m",
            "input_series": [
                {"series": selector("sandbox_updates_rejected_total", norm), "values": "0 2 2"},
                {"series": selector("sandbox_updates_rejected_total", refused), "values": "0 0 1"},
            ],
            "alert_rule_test": [
                check("0m", "SandboxUpdatesRejected"),
                check("2m", "SandboxUpdatesRejected", expect("SandboxUpdatesRejected", norm)),
                check("1m", "SandboxSiteDeclinedRound"),
                check("2m", "SandboxSiteDeclinedRound", expect("SandboxSiteDeclinedRound", refused)),
            ],
        },
        {
            "name": "above 100 sites event counters appear at the first event: each alerts at once, for 5 minutes",
            "interval": "1m",
            "input_series": [
                {"series": selector("sandbox_policy_violations_total", violations), "values": "_ _ 1 1 1 1 1 1 1"},
                {"series": selector("sandbox_updates_rejected_total", norm), "values": "_ _ _ 2 2 2 2 2 2"},
                {"series": selector("sandbox_updates_rejected_total", refused), "values": "_ _ 1 1 1 1 1 1 1"},
                {"series": selector("sandbox_small_cell_suppressed_total", small), "values": "_ 4 4 4 4 4 4 4 4"},
            ],
            "alert_rule_test": [
                check("1m", "SandboxPolicyViolation"),
                check("2m", "SandboxPolicyViolation", expect("SandboxPolicyViolation", violations)),
                check("6m", "SandboxPolicyViolation", expect("SandboxPolicyViolation", violations)),
                check("7m", "SandboxPolicyViolation"),
                check("2m", "SandboxUpdatesRejected"),
                check("3m", "SandboxUpdatesRejected", expect("SandboxUpdatesRejected", norm)),
                check("8m", "SandboxUpdatesRejected"),
                check("2m", "SandboxSiteDeclinedRound", expect("SandboxSiteDeclinedRound", refused)),
                check("7m", "SandboxSiteDeclinedRound"),
                check("1m", "SandboxStatisticsSuppressed", expect("SandboxStatisticsSuppressed", small)),
                check("6m", "SandboxStatisticsSuppressed"),
            ],
        },
        {
            "name": "withheld small-cell statistics are reported as a lawful safeguard",
            "interval": "1m",
            "input_series": [{"series": selector("sandbox_small_cell_suppressed_total", small), "values": "0 0 4 8"}],
            "alert_rule_test": [
                check("1m", "SandboxStatisticsSuppressed"),
                check("2m", "SandboxStatisticsSuppressed", expect("SandboxStatisticsSuppressed", small)),
            ],
        },
        {
            "name": "a fairness gap above 0.1 alerts in the round it is measured",
            "interval": "1m",
            "input_series": [{"series": selector("sandbox_fairness_accuracy_gap", gap), "values": "0.05 0.15 0.05"}],
            "alert_rule_test": [
                check("0m", "SandboxFairnessGapHigh"),
                check("1m", "SandboxFairnessGapHigh", expect("SandboxFairnessGapHigh", gap, 0.15)),
                check("2m", "SandboxFairnessGapHigh"),
            ],
        },
        {
            "name": "suspended and terminated runs alert, each under its own run id",
            "interval": "1m",
            "input_series": [
                *states({"running": "1 0 0 stale", "suspended": "0 1 0 stale", "terminated": "0 0 1 stale"}, 0),
                *states({"running": "_ _ _ 1 1", "terminated": "_ _ _ 0 0"}, 1),
            ],
            "alert_rule_test": [
                check("0m", "SandboxTrialSuspended"),
                check(
                    "1m",
                    "SandboxTrialSuspended",
                    expect("SandboxTrialSuspended", series("sandbox_trial_state", sandbox_trial_state="suspended")),
                ),
                check("1m", "SandboxTrialTerminated"),
                check(
                    "2m",
                    "SandboxTrialTerminated",
                    expect("SandboxTrialTerminated", series("sandbox_trial_state", sandbox_trial_state="terminated")),
                ),
                check("4m", "SandboxTrialTerminated"),
            ],
        },
        {
            "name": "a failed run alerts at once and does not page when its endpoint goes away",
            "interval": "1m",
            "input_series": [
                {"series": selector("up", TARGET), "values": "1 1 0 0 0 0"},
                *states({"running": "1 0 stale _ _ _", "failed": "0 1 stale _ _ _"}, 0, **TARGET),
            ],
            "alert_rule_test": [
                check("0m", "SandboxTrialFailed"),
                check(
                    "1m",
                    "SandboxTrialFailed",
                    expect(
                        "SandboxTrialFailed", {**series("sandbox_trial_state", sandbox_trial_state="failed"), **TARGET}
                    ),
                ),
                check("4m", "SandboxMetricsTargetDown"),
            ],
        },
        {
            "name": "a coordinator that dies mid-trial pages after 1 minute",
            "interval": "1m",
            "input_series": [
                {"series": selector("up", TARGET), "values": "1 1 0 0 0 0"},
                *states({"running": "1 1 stale _ _ _"}, 0, **TARGET),
            ],
            "alert_rule_test": [
                check("2m", "SandboxMetricsTargetDown"),
                check("4m", "SandboxMetricsTargetDown", expect("SandboxMetricsTargetDown", TARGET, 0.0)),
            ],
        },
        {
            "name": "a trial that ended normally does not page when its endpoint goes away",
            "interval": "1m",
            "input_series": [
                {"series": selector("up", TARGET), "values": "1 1 0 0 0 0"},
                *states({"running": "1 0 stale _ _ _", "finished": "0 1 stale _ _ _"}, 0, **TARGET),
            ],
            "alert_rule_test": [check("4m", "SandboxMetricsTargetDown")],
        },
    ]


def document() -> str:
    header = (
        "# Unit tests for alerts.yml: promtool test rules monitoring/prometheus/alerts_test.yml\n"
        "# GENERATED from the series the exporter emits; do not edit by hand. Regenerate with\n"
        "#   .venv/bin/python -m tests.monitoring.alert_cases > monitoring/prometheus/alerts_test.yml\n"
    )
    body = {"rule_files": ["alerts.yml"], "evaluation_interval": "1m", "tests": cases()}
    return header + yaml.safe_dump(body, sort_keys=False, width=1000, allow_unicode=True)


if __name__ == "__main__":
    sys.stdout.write(document())
