"""A command resolves the trial once: each site's node config and policy layer is read once."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from sandbox.cli import app
from sandbox.resolved_trial import resolve_trial
from tests.approved_demo import DemoCopy
from tests.file_reads import count_yaml_reads
from trialcore.spec_loading import load_spec

SITES = ("de-berlin", "fr-lyon", "gb-leeds", "ch-zurich")


def test_sandbox_check_reads_every_site_file_once(
    approved_demo: DemoCopy, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sandbox check` reads the spec, each node config and each policy file (shared ones too) exactly once."""
    reads = count_yaml_reads(monkeypatch)
    result = runner.invoke(app, ["check", str(approved_demo.spec), "--format", "json"])
    assert result.exit_code == 0, result.output
    node_configs = {(approved_demo.examples / "demo-sites" / f"{site}.yaml").resolve() for site in SITES}
    assert node_configs <= set(reads)
    assert approved_demo.spec.resolve() in reads
    policy_files = {path for path in reads if "policies" in path.parts}
    assert len(policy_files) >= 4 + 3  # four institutions, their countries (and shared presets)
    assert {path: count for path, count in reads.items() if count != 1} == {}


def test_resolved_trial_holds_each_sites_config_and_policy_in_spec_order(approved_demo: DemoCopy) -> None:
    """The resolved trial names every participant once, in the spec's order, with its own composed policy."""
    trial = resolve_trial(load_spec(approved_demo.spec))
    assert tuple(trial.sites) == SITES == tuple(trial.policies)
    assert all(trial.sites[site].config.site_id == site for site in SITES)
    assert trial.spec_hash == trial.loaded.spec_hash
