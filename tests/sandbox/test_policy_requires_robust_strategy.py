"""A policy may require a robust aggregation strategy; pre-flight names the rule, the file and the strategy."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from sandbox.cli import app
from tests.approved_demo import DemoCopy


def test_policy_requiring_a_robust_strategy_refuses_fedavg_and_permits_fedmedian(unapproved_demo: DemoCopy) -> None:
    """A site whose policy allows only FedMedian/FedTrimmedAvg refuses a FedAvg trial (exit 3) and permits FedMedian."""
    institution = unapproved_demo.examples / "policies" / "institutions" / "fr-lyon.yaml"
    text = institution.read_text()
    section = "\ntraining:\n  allowed_strategies: [FedMedian, FedTrimmedAvg]\n"
    institution.write_text(text.replace("\ntraining:\n", section, 1) if "\ntraining:\n" in text else text + section)
    result = CliRunner().invoke(app, ["check", str(unapproved_demo.spec), "--format", "json"])
    assert result.exit_code == 3
    denial = next(d for d in json.loads(result.stdout)["decisions"] if d["clause"] == "strategy" and not d["permit"])
    assert denial["site_id"] == "fr-lyon" and denial["value_found"] == "FedAvg"
    assert denial["source_file"].endswith("fr-lyon.yaml")
    robust = unapproved_demo.examples / "robust.yaml"
    robust.write_text(unapproved_demo.spec.read_text().replace("name: FedAvg", "name: FedMedian"))
    decisions = json.loads(CliRunner().invoke(app, ["check", str(robust), "--format", "json"]).stdout)["decisions"]
    assert all(d["permit"] for d in decisions if d["clause"] == "strategy")
