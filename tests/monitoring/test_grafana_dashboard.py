"""The Grafana dashboard and provisioning, validated statically and against a real Prometheus.

Grafana itself is not installable here; instead every PromQL expression of the
dashboard goes to a real Prometheus (a parse error is an HTTP 400) after Grafana's
template variables are substituted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from tests.monitoring.known_trial import new_metrics, populate
from tests.prometheus_server import PrometheusServer

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"
GRAFANA = MONITORING / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "sandbox.json"
ALERTS = MONITORING / "prometheus" / "alerts.yml"

_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")
_DURATION_VARIABLES = {"__interval", "__rate_interval", "__range"}
_METRIC_NAME = re.compile(r"\bsandbox_[a-z0-9_]+")
_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*\w+\)$")


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def panel_exprs() -> list[tuple[str, str]]:
    """(panel title, expr) for every query target of every panel."""
    return [(panel["title"], target["expr"]) for panel in panels(dashboard()) for target in panel.get("targets", [])]


def variable_exprs() -> list[tuple[str, str]]:
    """(variable name, selector) of every ``label_values(selector, label)`` template variable."""
    found = []
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            match = _LABEL_VALUES.match(variable["definition"])
            assert match, f"variable {variable['name']}: unsupported query {variable['definition']!r}"
            found.append((f"${variable['name']}", match["selector"]))
    return found


def substitute(expr: str) -> str:
    """Grafana variables replaced as Prometheus would receive them: durations 1m, others the regex .*"""

    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        return "1m" if name in _DURATION_VARIABLES else ".*"

    return _VARIABLE.sub(value, expr)


def alert_exprs() -> list[str]:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def defined_series_names() -> set[str]:
    """Every series name a fully populated SandboxMetrics exposes."""
    registry = CollectorRegistry()
    populate(new_metrics(registry))
    lines = generate_latest(registry).decode().splitlines()
    return {re.split(r"[{ ]", line, maxsplit=1)[0] for line in lines if line and not line.startswith("#")}


@pytest.mark.integration
@pytest.mark.parametrize(("where", "expr"), panel_exprs() + variable_exprs(), ids=lambda value: str(value)[:60])
def test_dashboard_query_is_accepted_by_prometheus_and_shows_data(
    scraped_trial: PrometheusServer, where: str, expr: str
) -> None:
    """Every dashboard query parses in a real Prometheus and shows data for a running trial."""
    assert scraped_trial.query(substitute(expr)), f"{where}: no data for {expr}"


def test_dashboard_and_alerts_use_only_defined_metrics() -> None:
    """A regulator never looks at a panel or alert on a metric the sandbox does not export."""
    defined = defined_series_names()
    used = {name for _, expr in panel_exprs() + variable_exprs() for name in _METRIC_NAME.findall(expr)}
    used |= {name for expr in alert_exprs() for name in _METRIC_NAME.findall(expr)}
    assert used - defined == set()


def test_dashboard_shows_what_a_regulator_supervises() -> None:
    """Epsilon vs budget, accuracy, fairness, rejections, violations, state, round and audit are on the board."""
    used = {name for _, expr in panel_exprs() for name in _METRIC_NAME.findall(expr)}
    assert {
        "sandbox_privacy_epsilon_spent",
        "sandbox_privacy_epsilon_budget",
        "sandbox_global_accuracy",
        "sandbox_site_accuracy",
        "sandbox_fairness_accuracy_gap",
        "sandbox_updates_rejected_total",
        "sandbox_policy_violations_total",
        "sandbox_trial_state",
        "sandbox_round",
        "sandbox_audit_entries_total",
    } <= used


def test_dashboard_is_well_formed() -> None:
    """Grafana can import the board: unique panel ids, each query panel on the datasource variable."""
    board = dashboard()
    ids = [panel["id"] for panel in panels(board)]
    assert len(ids) == len(set(ids))
    assert board["uid"] and board["title"]
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for panel in panels(board):
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert {"x", "y", "w", "h"} <= panel["gridPos"].keys(), panel["title"]


def test_provisioning_points_grafana_at_prometheus_and_the_dashboard() -> None:
    """Grafana provisioning adds a Prometheus datasource and a file provider for the dashboards."""
    datasources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    assert datasources["apiVersion"] == 1
    assert [source["type"] for source in datasources["datasources"]] == ["prometheus"]
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "sandbox.yml").read_text())
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]


def test_every_query_selects_one_run() -> None:
    """A regulator picks a trial and a run (template variables); every panel shows that run's series only."""
    variables = [variable["name"] for variable in dashboard()["templating"]["list"]]
    assert variables.index("trial") < variables.index("run_id")
    for where, expr in panel_exprs():
        for selector in re.findall(r"sandbox_[a-z0-9_]+\{[^}]*\}", expr):
            assert 'run_id=~"$run_id"' in selector, f"{where}: {selector}"
