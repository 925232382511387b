"""The privacy dry run counts the data contract's noised feature statistics before round 1."""

from __future__ import annotations

from pathlib import Path

import yaml

from sandbox.preflight import privacy_dry_run
from sandbox.resolved_trial import resolve_trial
from trialcore.spec_loading import load_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_dry_run_adds_the_statistics_release_to_every_round(tmp_path: Path) -> None:
    """With noised statistics each site's trial epsilon is higher than with per-site normalisation; nothing spent before."""
    noised = privacy_dry_run(resolve_trial(load_spec(EXAMPLES / "opt-clinics.yaml")))
    document = load_spec(EXAMPLES / "opt-clinics.yaml").spec.model_dump(mode="json")
    document["data"]["normalisation"] = "per-site"
    document["federation"] = str(EXAMPLES / "opt-sites")
    (tmp_path / "per-site.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")
    plain = privacy_dry_run(resolve_trial(load_spec(tmp_path / "per-site.yaml")))
    assert set(noised) == set(plain) == {"us-kentucky", "us-minnesota", "us-mississippi", "us-new-york"}
    for site_id, cost in noised.items():
        assert cost.trial_epsilon > plain[site_id].trial_epsilon + 0.1
        assert cost.spent_before == plain[site_id].spent_before == 0.0
