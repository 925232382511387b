"""`sandbox check` and `sandbox policies`: the "why not" table and the bundled presets, in-process."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from sandbox.cli import app
from tests.approved_demo import DemoCopy


def test_check_refuses_a_trial_without_dp_naming_rule_file_and_value(unapproved_demo: DemoCopy, tmp_path: Path) -> None:
    """A trial that adds no DP noise is refused (exit 3) at every site, each denial naming clause, file and value."""
    demo = unapproved_demo.spec
    lines = [line for line in demo.read_text().splitlines(keepends=True) if not line.lstrip().startswith(("noise_multiplier", "max_grad_norm"))]
    text = "".join(lines).replace("federation: demo-sites", f"federation: {demo.parent / 'demo-sites'}")
    spec = tmp_path / "no-dp.yaml"
    spec.write_text(text)
    result = CliRunner().invoke(app, ["check", str(spec), "--format", "json"])
    assert result.exit_code == 3
    document = json.loads(result.stdout)
    assert document["refused"] is True
    denied = {(d["site_id"], d["clause"]) for d in document["decisions"] if not d["permit"]}
    for site in ("de-berlin", "fr-lyon", "gb-leeds", "ch-zurich"):
        assert (site, "noise-floor") in denied
    noise = next(d for d in document["decisions"] if d["clause"] == "noise-floor" and d["site_id"] == "gb-leeds")
    assert noise["source_file"].endswith("uk-gdpr.yaml") and noise["value_found"] == "none"


def test_check_permits_the_demo(approved_demo: DemoCopy) -> None:
    """The approved demo (DP-SGD within every site's floor) passes pre-flight at all four sites (exit 0)."""
    result = CliRunner().invoke(app, ["check", str(approved_demo.spec), "--format", "json"])
    assert result.exit_code == 0, result.stdout
    assert json.loads(result.stdout)["refused"] is False


def test_redline_purpose_is_valid_but_refused_everywhere(unapproved_demo: DemoCopy, tmp_path: Path) -> None:
    """A redline purpose validates (exit 0) but every site's pre-flight refuses it (exit 3)."""
    demo = unapproved_demo.spec
    text = demo.read_text().replace("purpose: treatment-research", "purpose: insurance-pricing")
    text = text.replace("federation: demo-sites", f"federation: {demo.parent / 'demo-sites'}")
    spec = tmp_path / "redline.yaml"
    spec.write_text(text)
    assert CliRunner().invoke(app, ["validate", str(spec)]).exit_code == 0
    result = CliRunner().invoke(app, ["check", str(spec), "--format", "json"])
    assert result.exit_code == 3
    redlines = {d["site_id"] for d in json.loads(result.stdout)["decisions"] if d["clause"] == "purpose-redline" and not d["permit"]}
    assert redlines == {"de-berlin", "fr-lyon", "gb-leeds", "ch-zurich"}


def test_policies_list_and_show() -> None:
    """`policies list` prints one line per preset; `show` prints its commented YAML; an unknown name exits 2."""
    listed = CliRunner().invoke(app, ["policies", "list"])
    assert listed.exit_code == 0
    assert {line.split()[0] for line in listed.stdout.splitlines()} == {"ch-fadp", "eu-gdpr-ai-act", "uk-gdpr", "us-hipaa"}
    shown = CliRunner().invoke(app, ["policies", "show", "uk-gdpr"])
    assert shown.exit_code == 0 and "NOT LEGAL ADVICE" in shown.stdout
    as_json = CliRunner().invoke(app, ["policies", "show", "us-hipaa", "--format", "json"])
    assert as_json.exit_code == 0 and json.loads(as_json.stdout)
    unknown = CliRunner().invoke(app, ["policies", "show", "mars"])
    assert unknown.exit_code == 2
