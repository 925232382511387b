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
    lines = [
        line
        for line in demo.read_text().splitlines(keepends=True)
        if not line.lstrip().startswith(("noise_multiplier", "max_grad_norm"))
    ]
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
    assert json.loads(result.stdout)["privacy_stop_expected_before_round"] is None


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
    redlines = {
        d["site_id"]
        for d in json.loads(result.stdout)["decisions"]
        if d["clause"] == "purpose-redline" and not d["permit"]
    }
    assert redlines == {"de-berlin", "fr-lyon", "gb-leeds", "ch-zurich"}


def test_policies_list_and_show() -> None:
    """`policies list` prints one line per preset; `show` prints its commented YAML; an unknown name exits 2."""
    listed = CliRunner().invoke(app, ["policies", "list"])
    assert listed.exit_code == 0
    assert {line.split()[0] for line in listed.stdout.splitlines()} == {
        "ch-fadp",
        "eu-gdpr-ai-act",
        "uk-gdpr",
        "us-hipaa",
    }
    shown = CliRunner().invoke(app, ["policies", "show", "uk-gdpr"])
    assert shown.exit_code == 0 and "NOT LEGAL ADVICE" in shown.stdout
    as_json = CliRunner().invoke(app, ["policies", "show", "us-hipaa", "--format", "json"])
    assert as_json.exit_code == 0 and json.loads(as_json.stdout)
    unknown = CliRunner().invoke(app, ["policies", "show", "mars"])
    assert unknown.exit_code == 2


def _demo_variant(demo: DemoCopy, tmp_path: Path, name: str, replacements: dict[str, str]) -> Path:
    text = demo.spec.read_text().replace("federation: demo-sites", f"federation: {demo.spec.parent / 'demo-sites'}")
    lines = []
    for line in text.splitlines():
        key = line.strip().split(":")[0]
        lines.append(f"  {key}: {replacements[key]}" if key in replacements and line.startswith("  ") else line)
    spec = tmp_path / name
    spec.write_text("\n".join(lines) + "\n")
    return spec


def test_check_denies_a_site_that_cannot_pay_for_round_1(unapproved_demo: DemoCopy, tmp_path: Path) -> None:
    """A trial budget smaller than one round's epsilon is refused (exit 3) in the privacy-budget row, naming both budgets."""
    spec = _demo_variant(unapproved_demo, tmp_path, "tiny-budget.yaml", {"epsilon_budget": "0.05"})
    result = CliRunner().invoke(app, ["check", str(spec), "--format", "json"])
    assert result.exit_code == 3
    document = json.loads(result.stdout)
    budget = [d for d in document["decisions"] if d["clause"] == "privacy-budget"]
    assert {d["site_id"] for d in budget if not d["permit"]} == {"de-berlin", "fr-lyon", "gb-leeds", "ch-zurich"}
    assert all("cannot pay for even round 1" in d["reason"] and "<= 0.05 this trial" in d["allowed"] for d in budget)
    assert all(row["rounds_affordable"] == 0 for row in document["privacy_dry_run"].values())


def test_check_prices_the_whole_trial_and_marks_sites_that_would_stop_early(
    unapproved_demo: DemoCopy, tmp_path: Path
) -> None:
    """With more rounds than a budget pays for, sites are permitted but told how many rounds fit; the text shows the dry run."""
    spec = _demo_variant(unapproved_demo, tmp_path, "long.yaml", {"epsilon_budget": "5.0", "noise_multiplier": "1.0"})
    result = CliRunner().invoke(app, ["check", str(spec), "--format", "json"])
    document = json.loads(result.stdout)
    rows = document["privacy_dry_run"]
    assert set(rows) == {"de-berlin", "fr-lyon", "gb-leeds", "ch-zurich"}
    for site, row in rows.items():
        assert 0 < row["rounds_affordable"] < row["rounds"] == 10, site
        assert row["trial_epsilon"] > 5.0 and row["epsilon_spent_before"] == 0.0
        decision = next(d for d in document["decisions"] if d["clause"] == "privacy-budget" and d["site_id"] == site)
        assert decision["permit"] and f"only rounds 1-{row['rounds_affordable']} of 10 fit" in decision["reason"]
    fitting = [sum(row["rounds_affordable"] >= r for row in rows.values()) for r in range(1, 11)]
    assert document["privacy_stop_expected_before_round"] == 1 + next(i for i, n in enumerate(fitting) if n < 3)
    text = CliRunner().invoke(app, ["check", str(spec)])
    assert "Privacy dry run" in text.stdout and "rounds that fit" in text.stdout
    assert f"from round {document['privacy_stop_expected_before_round']} on, too few sites" in text.stdout


def test_a_real_site_without_a_state_folder_cannot_keep_a_ledger(unapproved_demo: DemoCopy) -> None:
    """A non-simulated site with no state_dir would start a fresh ledger every run: check exits 2 naming the field."""
    config = unapproved_demo.site_config("fr-lyon")
    config.write_text(config.read_text().replace("simulated: true", "simulated: false"))
    result = CliRunner().invoke(app, ["check", str(unapproved_demo.spec)])
    assert result.exit_code == 2
    assert "fr-lyon.yaml: state_dir: found nothing;" in result.stderr
    assert "budget across trials could not be kept" in result.stderr
