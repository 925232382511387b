"""The shipped Prometheus config and alert rules, checked by promtool and by a real Prometheus."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests import prometheus_server
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
    """Epsilon, violation, rejection, fairness, state and target-down alerts fire as specified."""
    promtool_ok(promtool, "test", "rules", str(ALERTS_TEST))


def test_every_alert_has_regulator_annotations() -> None:
    """Every alert tells a regulator what happened (summary) and what to do (description)."""
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    for rule in (rule for group in groups for rule in group["rules"]):
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
    assert {
        "SandboxPrivacyBudgetNearlySpent",
        "SandboxPrivacyBudgetExhausted",
        "SandboxPolicyViolation",
        "SandboxUpdatesRejected",
        "SandboxFairnessGapHigh",
        "SandboxTrialSuspended",
        "SandboxTrialTerminated",
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
