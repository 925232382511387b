"""The demo's privacy accounting agrees everywhere a regulator may look.

For each site, the epsilon in its ledger, in report.json, in metrics.prom, in a real Prometheus
that scraped the run, and from Opacus's RDPAccountant run independently on the (noise, sample
rate, steps) the site's own audit chain records for each round, at the trial's delta, are equal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from opacus.accountants import RDPAccountant
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import DemoRun

pytestmark = pytest.mark.integration


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _metrics_prom(run_dir: Path, name: str) -> dict[str, float]:
    values = {}
    for family in text_string_to_metric_families((run_dir / "metrics.prom").read_text()):
        values.update({s.labels["site"]: s.value for s in family.samples if s.name == name})
    return values


def test_epsilon_agrees_across_ledger_report_metrics_prometheus_and_opacus(demo_run: DemoRun) -> None:
    """Ledger == report == metrics.prom == Prometheus, and Opacus recomputes the same epsilon from the audited rounds."""
    report, run_dir = demo_run.report, demo_run.run_dir
    delta = report["sites"][0]["privacy"]["delta"]
    spent_prom = _metrics_prom(run_dir, "sandbox_privacy_epsilon_spent")
    scraped = demo_run.prometheus.query(
        f'last_over_time(sandbox_privacy_epsilon_spent{{trial="{report["trial_id"]}"}}[10m])'
    )
    spent_scraped = {s["metric"]["site"]: float(s["value"][1]) for s in scraped}
    for site in report["sites"]:
        site_id = site["site_id"]
        [ledger_file] = (run_dir / "sites" / site_id / "privacy").glob("*.ledger.jsonl")
        charges = _lines(ledger_file)
        assert [(c["release"], c["round"]) for c in charges] == [("feature-statistics", 0)] + [
            (kind, r) for r in range(1, 11) for kind in ("dp-sgd", "evaluation")
        ], "every release charged: the feature sums once, then each round's training and evaluation"
        ledger_epsilon = charges[-1]["cumulative_epsilon"]
        chain = _lines(run_dir / "sites" / site_id / "audit.jsonl")
        updates = [e["payload"]["dp_sgd"] for e in chain if e["event"] == "update-sent"]
        releases = [e["payload"]["release"] for e in chain if e["event"] in ("feature-sums-sent", "evaluation-sent")]
        assert len(releases) == 11
        training = [(u["noise_multiplier"], u["sample_rate"], u["steps"]) for u in updates]
        accountant = RDPAccountant()
        accountant.history = training + [(r["noise_multiplier"], 1.0, 1) for r in releases]
        opacus_epsilon = accountant.get_epsilon(delta)
        training_alone = RDPAccountant()
        training_alone.history = training
        by_release = site["privacy"]["trial_epsilon_by_release"]
        assert by_release["dp-sgd"] == pytest.approx(training_alone.get_epsilon(delta), rel=1e-9)
        assert max(by_release.values()) < site["privacy"]["trial_epsilon"] <= sum(by_release.values())
        assert site["privacy"]["epsilon_spent"] == ledger_epsilon
        assert spent_prom[site_id] == pytest.approx(ledger_epsilon, rel=1e-12)
        assert spent_scraped[site_id] == pytest.approx(ledger_epsilon, rel=1e-9)
        assert opacus_epsilon == pytest.approx(ledger_epsilon, rel=1e-9)
        assert 0 < ledger_epsilon <= site["privacy"]["epsilon_budget"]
        assert site["privacy"]["dry_run"]["trial_epsilon"] == pytest.approx(ledger_epsilon, rel=1e-9)


def test_report_states_what_epsilon_covers_and_what_it_does_not(demo_run: DemoRun) -> None:
    """The report tells a regulator the privacy unit and the gaps: no client-sampling amplification, metrics not DP."""
    scope = demo_run.report["privacy_scope"]
    assert scope["accountant"] == "rdp"
    assert "Record-level" in scope["covers"]
    gaps = " ".join(scope["does_not_cover"])
    assert "Client sampling is not amplified" in gaps and "Record counts are treated as public" in gaps
    assert "evaluation" in scope["covers"] and "feature statistics" in scope["covers"]
