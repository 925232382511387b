"""The shipped Prometheus config and alert rules, checked by promtool and by a real Prometheus."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from monitoring.exporter import DEFAULT_LINGER_SECONDS
from monitoring.labels import ENDED_STATES, TRIAL_STATES
from tests import prometheus_server
from tests.monitoring import alert_cases
from tests.prometheus_server import PrometheusServer

PROMETHEUS_DIR = Path(__file__).resolve().parents[2] / "monitoring" / "prometheus"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yml"


def promtool_ok(promtool: str, *args: str) -> None:
    done = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr


def alert_names() -> set[str]:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return {rule["alert"] for group in groups for rule in group["rules"]}


def test_shipped_config_passes_promtool(promtool: str) -> None:
    """A regulator can start Prometheus with the shipped config: `promtool check config` accepts it."""
    promtool_ok(promtool, "check", "config", str(CONFIG))


def test_shipped_alert_rules_pass_promtool(promtool: str) -> None:
    """The shipped alert rules are valid: `promtool check rules` accepts them."""
    promtool_ok(promtool, "check", "rules", str(ALERTS))


def test_alert_rule_unit_tests_pass(promtool: str) -> None:
    """Every alert fires, and stays silent, as specified (promtool on the generated cases)."""
    promtool_ok(promtool, "test", "rules", str(ALERTS_TEST))


def test_every_alert_has_regulator_annotations() -> None:
    """Every alert tells a regulator what happened (summary) and what to do (description)."""
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    for rule in (rule for group in groups for rule in group["rules"]):
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
    assert {
        "SandboxPrivacyBudgetNearlySpent",
        "SandboxPrivacyBudgetExhausted",
        "SandboxPolicyViolation",
        "SandboxUpdatesRejected",
        "SandboxSiteDeclinedRound",
        "SandboxStatisticsSuppressed",
        "SandboxFairnessGapHigh",
        "SandboxTrialStoppedForPrivacyBudget",
        "SandboxTrialSuspended",
        "SandboxTrialTerminated",
        "SandboxTrialFailed",
        "SandboxMetricsTargetDown",
    } <= alert_names()


@pytest.mark.integration
def test_real_prometheus_scrapes_a_trial_and_loads_the_rules(scraped_trial: PrometheusServer) -> None:
    """A real Prometheus with the shipped config scrapes a served trial and loads every alert rule."""
    (sample,) = scraped_trial.query('sandbox_global_accuracy{split="test"}')
    assert float(sample["value"][1]) == 0.95
    assert sample["metric"]["trial"] == "trial-0042"
    assert sample["metric"]["job"] == "sandbox"
    (up,) = scraped_trial.query('up{job="sandbox"}')
    assert up["value"][1] == "1"
    rules = [rule for group in scraped_trial.api("rules")["groups"] for rule in group["rules"]]
    assert {rule["name"] for rule in rules} == alert_names()
    assert all(rule["health"] != "err" for rule in rules), rules


def test_missing_promtool_fails_with_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without promtool (and no root to install it) a test fails saying how to install it, never skips."""
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(pytest.fail.Exception, match="sudo apt-get install prometheus"):
        prometheus_server.require_promtool()


def test_alert_cases_are_generated_not_typed() -> None:
    """alerts_test.yml is exactly what the generator builds from the exporter's series (regenerate, never edit)."""
    assert ALERTS_TEST.read_text(encoding="utf-8") == alert_cases.document(), (
        "regenerate: .venv/bin/python -m tests.monitoring.alert_cases > monitoring/prometheus/alerts_test.yml"
    )


def test_alert_cases_use_only_series_the_exporter_emits() -> None:
    """Every input series of the rule tests has the name, label names and label values of an emitted series."""
    cases = yaml.safe_load(ALERTS_TEST.read_text(encoding="utf-8"))["tests"]
    seen_runs = set()
    for case in cases:
        for item in case["input_series"]:
            name, _, inner = item["series"].partition("{")
            labels = dict(re.findall(r'(\w+)="([^"]*)"', inner))
            if name == "up":
                assert labels == alert_cases.TARGET, item
                continue
            own = {k: v for k, v in labels.items() if k not in alert_cases.SCRAPE_LABELS}
            seen_runs.add(own["run_id"])
            assert own in alert_cases.emitted_series(own["run_id"])[name], item["series"]
    assert seen_runs == set(alert_cases.RUNS)
    assert all(re.fullmatch(r"\d{8}T\d{12}Z", run) for run in seen_runs), "the format of sandbox.server_app.new_run_id"


def test_every_alert_is_tested_firing_and_silent() -> None:
    """Each alert rule has a promtool case where it fires and one where it stays silent."""
    cases = yaml.safe_load(ALERTS_TEST.read_text(encoding="utf-8"))["tests"]
    checks = [check for case in cases for check in case["alert_rule_test"]]
    firing = {check["alertname"] for check in checks if check["exp_alerts"]}
    silent = {check["alertname"] for check in checks if not check["exp_alerts"]}
    assert firing == silent == alert_names()


def test_target_down_pages_only_for_a_trial_under_way() -> None:
    """The target-down alert watches exactly the states that are not an end state."""
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    (rule,) = [r for g in groups for r in g["rules"] if r["alert"] == "SandboxMetricsTargetDown"]
    (watched,) = re.findall(r'sandbox_trial_state=~"([^"]+)"', rule["expr"])
    assert set(watched.split("|")) == set(TRIAL_STATES) - set(ENDED_STATES)


def test_default_linger_covers_two_scrape_intervals_of_the_shipped_config() -> None:
    """By default `sandbox run` serves the final state long enough for the shipped Prometheus to scrape it twice."""
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "sandbox"]
    interval = job.get("scrape_interval", config["global"]["scrape_interval"])
    assert interval.endswith("s") and not interval.endswith("ms")
    assert 2 * float(interval[:-1]) <= DEFAULT_LINGER_SECONDS
