"""What a regulator's real Prometheus (shipped config and alert rules, 1 s scrapes) sees of whole trials.

The demo (the shared session run) ends ``finished`` with no alert firing, although one site spent
90 % of the trial's budget. A near-budget trial, whose largest site spends 85 % of the trial budget
in round 1, runs twice under one trial id on one metrics port: each run is its own set of series;
the first, with ``sandbox run``'s default linger, is seen ending ``budget-exhausted`` with the
budget warning and the stop alert firing; neither run pages as a target down when it ends.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sandbox.cli import app
from sandbox.preflight import privacy_dry_run
from sandbox.release_noise import FAIRNESS_GAP_MAX_NOISE_STD
from sandbox.resolved_trial import resolve_trial
from tests.approved_demo import copy_demo
from tests.integration.conftest import SANDBOX, DemoRun, sandbox_env
from tests.monitoring.test_grafana_dashboard import _DURATION_VARIABLES as DURATION_VARIABLES
from tests.monitoring.test_grafana_dashboard import _VARIABLE as VARIABLE
from tests.monitoring.test_grafana_dashboard import panel_exprs, variable_exprs
from tests.prometheus_server import PrometheusServer, free_port, start_prometheus
from trialcore.spec_loading import load_spec

pytestmark = pytest.mark.integration

TRIAL = "near-budget"
ROUNDS = 4
SPENT_IN_ROUND_1 = 0.85
"""Share of the trial budget the costliest site spends in round 1: it cannot pay for round 2."""
WINDOW = "[30m]"


def ever(prometheus: PrometheusServer, expr: str) -> list[Any]:
    """Series of ``expr`` present at any time of the test session (a subquery over the last 30 min)."""
    return prometheus.query(f"max_over_time(({expr}){WINDOW[:-1]}:1s])")


def final_sample_time(prometheus: PrometheusServer, selector: str) -> float:
    """Time of the last scraped sample of ``selector`` whose value is 1."""
    (series,) = prometheus.query(f"{selector}{WINDOW}")
    return max(float(t) for t, v in series["values"] if v == "1")


def firing_at(prometheus: PrometheusServer, when: float, run_id: str) -> list[str]:
    """Names of the alerts of ``run_id`` firing at time ``when``."""
    data = prometheus.api("query", query=f'ALERTS{{alertstate="firing", run_id="{run_id}"}}', time=str(when))
    return sorted(sample["metric"]["alertname"] for sample in data["result"])


def _write_spec(path: Path, template: str, *, rounds: int, budget: float) -> Path:
    lines = []
    for line in template.replace("trial_id: cancer-risk-demo", f"trial_id: {TRIAL}").splitlines():
        if line.startswith("rounds:"):
            line = f"rounds: {rounds}"
        elif line.strip().startswith("epsilon_budget:"):
            line = f"  epsilon_budget: {budget!r}"
        elif line.strip().startswith(("feature_statistics_noise_multiplier:", "evaluation_noise_multiplier:")):
            # Near-free releases besides training, so each round's DP-SGD is what exhausts the budget.
            line = f"  {line.strip().split(':')[0]}: 1000.0"
        lines.append(line)
    path.write_text("\n".join(lines) + "\n")
    return path


def _run(spec: Path, root: Path, port: int, *linger: str) -> tuple[int, dict[str, Any], str]:
    command = [str(SANDBOX), "run", str(spec), "--runs-root", str(root / "runs-out"), "--metrics-port", str(port)]
    done = subprocess.run(
        [*command, *linger, "--format", "json"],
        cwd=root,
        env=sandbox_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    return done.returncode, json.loads(done.stdout), done.stderr


@pytest.fixture(scope="module")
def near_budget(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Two runs of the near-budget trial on one port, watched by one real Prometheus."""
    root = tmp_path_factory.mktemp("near-budget")
    demo = copy_demo(root)
    template = demo.spec.read_text()
    probe = _write_spec(demo.examples / "probe.yaml", template, rounds=1, budget=8.0)
    round_1 = {site: cost.trial_epsilon for site, cost in privacy_dry_run(resolve_trial(load_spec(probe))).items()}
    budget = max(round_1.values()) / SPENT_IN_ROUND_1
    spec = _write_spec(demo.examples / f"{TRIAL}.yaml", template, rounds=ROUNDS, budget=budget)
    demo.approve(spec)
    costs = privacy_dry_run(resolve_trial(load_spec(spec)))
    costliest = max(round_1, key=lambda site: round_1[site])
    assert costs[costliest].rounds_affordable == 1, costs
    port = free_port()
    with start_prometheus(root / "prometheus", scrape_targets=[f"127.0.0.1:{port}"], scrape_interval="1s") as prom:
        first = _run(spec, root, port)  # sandbox run's default linger
        second = _run(spec, root, port, "--linger-seconds", "2")
        prom.wait_for('up{job="sandbox"} == 0', timeout=20)
        yield {"prometheus": prom, "runs": [first, second], "costliest": costliest, "budget": budget}


def test_demo_ends_finished_with_no_alert_firing(demo_run: DemoRun) -> None:
    """The demo's final state reaches Prometheus as finished; no alert fires on it, and its end pages nobody."""
    prometheus, run_id = demo_run.prometheus, demo_run.run_dir.name
    trial = demo_run.report["trial_id"]
    selector = f'sandbox_trial_state{{trial="{trial}", run_id="{run_id}", sandbox_trial_state="finished"}}'
    end = final_sample_time(prometheus, selector)
    assert firing_at(prometheus, end, run_id) == []
    used = prometheus.query(
        f'last_over_time(sandbox_privacy_budget_used_ratio{{run_id="{run_id}", budget="trial"}}{WINDOW})'
    )
    assert max(float(s["value"][1]) for s in used) > 0.85, "the demo spends most of its trial budget, as planned"
    prometheus.wait_for('up{job="sandbox"} == 0', timeout=20)
    # Paging means firing: one scrape that times out on a loaded machine makes the alert pending, and its
    # `for: 1m` exists so that this pages nobody.
    assert ever(prometheus, 'ALERTS{alertname="SandboxMetricsTargetDown", alertstate="firing"}') == []


def test_demo_auroc_says_what_it_covers_in_series_and_report(demo_run: DemoRun) -> None:
    """The global AUROC comes with the sites and test records it covers, the same in Prometheus and report.json."""
    final = demo_run.report["final"]["global"]
    last_round = demo_run.report["rounds"][-1]["sites"]
    covered = [stats["num_test"] for stats in last_round.values() if stats["test_auroc"] is not None]
    assert final["auroc_sites"] == len(covered) >= 1
    # Test counts leave the sites rounded down to 10 records: 31, 34, 38, 41 -> 30, 30, 30, 40.
    assert final["auroc_num_test"] == sum(covered) <= final["num_test"] == 130
    assert demo_run.summary["global_test_auroc_sites"] == final["auroc_sites"]
    assert demo_run.summary["global_test_auroc_num_test"] == final["auroc_num_test"]
    run_id = demo_run.run_dir.name
    for name, expected in (
        ("sandbox_global_auroc_sites", final["auroc_sites"]),
        ("sandbox_global_auroc_test_records", final["auroc_num_test"]),
    ):
        (sample,) = demo_run.prometheus.query(f'last_over_time({name}{{run_id="{run_id}", split="test"}}{WINDOW})')
        assert float(sample["value"][1]) == expected


def test_two_runs_of_one_trial_are_two_series_sets(near_budget: dict[str, Any]) -> None:
    """Each run of the trial has its own run_id series; both stopped for budget (exit 4)."""
    prometheus: PrometheusServer = near_budget["prometheus"]
    run_ids = []
    for code, summary, stderr in near_budget["runs"]:
        assert code == 4, stderr[-3000:]
        assert summary["state"] == "budget-exhausted"
        run_ids.append(Path(summary["run_dir"]).name)
    assert len(set(run_ids)) == 2
    seen = prometheus.query(f'count by (run_id) (last_over_time(sandbox_trial_state{{trial="{TRIAL}"}}{WINDOW}))')
    assert sorted(s["metric"]["run_id"] for s in seen) == sorted(run_ids)
    for run_id, (_, summary, _) in zip(run_ids, near_budget["runs"], strict=True):
        (rounds,) = prometheus.query(f'last_over_time(sandbox_rounds_completed_total{{run_id="{run_id}"}}{WINDOW})')
        assert float(rounds["value"][1]) == summary["rounds_completed"], "each run counts its own rounds from 0"


def test_budget_exhausted_trial_final_state_and_alerts_are_seen_with_default_linger(
    near_budget: dict[str, Any],
) -> None:
    """With default settings Prometheus sees the run end budget-exhausted, the stop alert and the 85 % warning fire."""
    prometheus: PrometheusServer = near_budget["prometheus"]
    _, summary, _ = near_budget["runs"][0]
    run_id = Path(summary["run_dir"]).name
    selector = f'sandbox_trial_state{{run_id="{run_id}", sandbox_trial_state="budget-exhausted"}}'
    end = final_sample_time(prometheus, selector)
    firing = firing_at(prometheus, end, run_id)
    assert "SandboxTrialStoppedForPrivacyBudget" in firing and "SandboxPrivacyBudgetExhausted" in firing
    warned = prometheus.api(
        "query",
        query=f'ALERTS{{alertname="SandboxPrivacyBudgetNearlySpent", alertstate="firing", run_id="{run_id}"}}',
        time=str(end),
    )["result"]
    costliest = [s for s in warned if s["metric"]["site"] == near_budget["costliest"]]
    assert [s["metric"]["budget"] for s in costliest] == ["trial"]
    (used,) = prometheus.query(
        f'last_over_time(sandbox_privacy_budget_used_ratio{{run_id="{run_id}", budget="trial", '
        f'site="{near_budget["costliest"]}"}}{WINDOW})'
    )
    assert float(used["value"][1]) == pytest.approx(0.85, abs=1e-6)
    (active,) = prometheus.query(f'last_over_time(sandbox_participants_active{{run_id="{run_id}"}}{WINDOW})')
    assert float(active["value"][1]) < 3, "the stopping round had fewer than min_participants trainers"
    # Paging means firing: one scrape that times out on a loaded machine makes the alert pending, and its
    # `for: 1m` exists so that this pages nobody.
    assert ever(prometheus, 'ALERTS{alertname="SandboxMetricsTargetDown", alertstate="firing"}') == []


def _substitute_run(expr: str, *, trial: str, run_id: str) -> str:
    """Grafana's variables as the dashboard sends them for one run: that trial and run, every site, 1m intervals."""
    chosen = {"trial": trial, "run_id": run_id}

    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        return "1m" if name in DURATION_VARIABLES else chosen.get(name, ".*")

    return VARIABLE.sub(value, expr)


FAIRNESS_GAP = "sandbox_fairness_accuracy_gap"


def _gap_is_noise(report: dict[str, Any]) -> bool:
    """True when no round of ``report`` published a fairness gap because its noise was too large to read it."""
    rounds = report["rounds"]
    return all(
        r["fairness_accuracy_gap"] is None
        and r["fairness_accuracy_gap_noise_std"] is not None
        and r["fairness_accuracy_gap_noise_std"] > FAIRNESS_GAP_MAX_NOISE_STD
        for r in rounds
    )


@pytest.mark.parametrize(("where", "expr"), panel_exprs() + variable_exprs(), ids=lambda value: str(value)[:60])
def test_every_dashboard_panel_shows_the_demo_run(demo_run: DemoRun, where: str, expr: str) -> None:
    """Each panel's query of the shipped Grafana dashboard returns the real demo run's series, at its final state.

    The one exception is the fairness gap while it is made of noise (the demo's 30-40 test records): it
    must then be absent, and its noise, the panel's other query, present.
    """
    prometheus, run_id = demo_run.prometheus, demo_run.run_dir.name
    trial = demo_run.report["trial_id"]
    end = final_sample_time(
        prometheus, f'sandbox_trial_state{{trial="{trial}", run_id="{run_id}", sandbox_trial_state="finished"}}'
    )
    query = _substitute_run(expr, trial=trial, run_id=run_id)
    result = prometheus.api("query", query=query, time=str(end))["result"]
    if expr.startswith(f"{FAIRNESS_GAP}{{") and _gap_is_noise(demo_run.report):
        # Issue 13: a gap made of noise is not published (nor fed to the fairness alert); the panel's
        # other query, the gap's noise, says why.
        assert result == [], f"{where}: a gap made of noise was published: {result}"
        return
    assert result, f"{where}: no data for {query}"
    values = [sample["value"][1] for sample in result] if isinstance(result[0], dict) else [result[1]]
    assert any(v not in ("NaN", "+Inf", "-Inf") for v in values), f"{where}: only {values} for {query}"


def test_budget_exhausted_runs_verify_with_every_site_chain_anchored(near_budget: dict[str, Any]) -> None:
    """A trial stopped for budget records every site's head, entries written for refusals included: it verifies."""
    for _, summary, _ in near_budget["runs"]:
        run_dir = Path(summary["run_dir"])
        result = CliRunner().invoke(app, ["audit", "verify", str(run_dir)])
        assert result.exit_code == 0, result.stdout + result.stderr
        report = json.loads((run_dir / "report.json").read_text())
        heads = report["audit"]["sites"]
        assert sorted(heads) == sorted(s["site_id"] for s in report["sites"])
        chain = (run_dir / heads[near_budget["costliest"]]["path"]).read_text().splitlines()
        assert "privacy-budget-exhausted" in [json.loads(line)["event"] for line in chain]
        assert heads[near_budget["costliest"]]["length"] == len(chain)
