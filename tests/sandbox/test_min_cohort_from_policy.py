"""The minimum cohort for released statistics comes from the sites' composed policy."""

from __future__ import annotations

import shutil
from pathlib import Path

from sandbox.preflight import preflight
from sandbox.resolved_trial import resolve_trial
from sandbox.server_app import min_cohort_size
from trialcore.spec_loading import load_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_strictest_site_sets_the_minimum_cohort(tmp_path: Path) -> None:
    """One site raising its minimum cohort to 40 raises it for the whole trial; the demo's policies keep 11."""
    assert min_cohort_size(preflight(resolve_trial(load_spec(EXAMPLES / "demo.yaml")))) == 11
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    institution = tmp_path / "examples" / "policies" / "institutions" / "gb-leeds.yaml"
    text = institution.read_text()
    assert "min_cohort_size" not in text
    institution.write_text(
        text + "\ndata:\n  min_cohort_size: 40\n"
        if "\ndata:" not in text
        else text.replace("\ndata:\n", "\ndata:\n  min_cohort_size: 40\n", 1)
    )
    assert min_cohort_size(preflight(resolve_trial(load_spec(tmp_path / "examples" / "demo.yaml")))) == 40
