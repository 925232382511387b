"""The refused variants in examples/ fail pre-flight the way the README shows, and `sandbox run` runs nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sandbox.cli import app
from tests.approved_demo import DemoCopy


@pytest.fixture
def examples(unapproved_demo: DemoCopy) -> Path:
    """A private copy of examples/ (the demo sites' approval state lies beside it, never in the repository's runs/)."""
    return unapproved_demo.examples


@pytest.mark.parametrize(
    ("variant", "exit_code", "site", "clause"),
    [
        ("refused-redline.yaml", 3, "ch-zurich", "purpose-redline"),
        ("refused-expired-plan.yaml", 3, "fr-expired", "validity"),
        ("refused-transfer.yaml", 3, "us-boston", "transfer"),
    ],
)
def test_variant_is_valid_but_refused_naming_the_site_and_clause(
    examples: Path, variant: str, exit_code: int, site: str, clause: str
) -> None:
    """Each refused variant validates (exit 0) and its pre-flight denies the named clause at the named site (exit 3)."""
    spec = str(examples / variant)
    assert CliRunner().invoke(app, ["validate", spec]).exit_code == 0
    result = CliRunner().invoke(app, ["check", spec, "--format", "json"])
    assert result.exit_code == exit_code
    denied = {(d["site_id"], d["clause"]) for d in json.loads(result.stdout)["decisions"] if not d["permit"]}
    assert (site, clause) in denied


def test_loosening_layer_is_bad_input_naming_both_files(examples: Path) -> None:
    """A lower layer that raises its preset's epsilon budget is an error (exit 2) naming both files, the field and both values."""
    result = CliRunner().invoke(app, ["check", str(examples / "refused-loosening.yaml")])
    assert result.exit_code == 2
    line = next(line for line in result.stderr.splitlines() if "must not loosen" in line)
    assert "loosening-example.yaml: privacy.epsilon_budget: found 20.0" in line
    assert "8.0 set by policies/presets/eu-gdpr-ai-act.yaml" in line


def test_run_refused_by_policy_exits_3_and_runs_nothing(examples: Path, tmp_path: Path) -> None:
    """`sandbox run` on a refused trial exits 3 before round 1: no run folder, no Flower simulation."""
    runs = tmp_path / "runs-out"  # tmp_path/runs holds the demo sites' approval state
    result = CliRunner().invoke(
        app, ["run", str(examples / "refused-transfer.yaml"), "--runs-root", str(runs), "--metrics-port", "0"]
    )
    assert result.exit_code == 3
    assert "Refused by policy before round 1" in result.stderr
    assert not runs.exists()


def test_invalid_spec_exit_2_wins_over_refusal(examples: Path, tmp_path: Path) -> None:
    """When a refused spec is also invalid, `check` and `run` exit 2 (bad input), not 3."""
    text = (examples / "refused-redline.yaml").read_text().replace("rounds: 10", "rounds: 0")
    text = text.replace("federation: demo-sites", f"federation: {examples / 'demo-sites'}")
    spec = tmp_path / "both.yaml"
    spec.write_text(text)
    assert CliRunner().invoke(app, ["check", str(spec)]).exit_code == 2
    assert CliRunner().invoke(app, ["run", str(spec), "--runs-root", str(tmp_path / "runs-out")]).exit_code == 2
