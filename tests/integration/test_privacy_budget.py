"""Privacy budgets across trials: a second trial on the same ledgers starts from what the first spent,
and stops with exit 4 once too few sites have budget left.

Two ``sandbox run`` processes on one private copy of the demo whose sites keep their state
(audit chains, privacy ledgers) in a ``state_dir``, as a real site does. Each trial runs 4 rounds
at noise multiplier 1.0: the first costs every site 6.0-6.9 epsilon of the presets' budget of
8 per dataset; the second then fits only 1-3 rounds per site, so after round 2 fewer than the
trial's 3 minimum participants have budget left.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from opacus.accountants import RDPAccountant
from prometheus_client.parser import text_string_to_metric_families

from tests.approved_demo import DEMO_SITES, DemoCopy, copy_demo
from tests.integration.conftest import SANDBOX, sandbox_env
from trialcore.audit_verify import verify_chain

pytestmark = pytest.mark.integration


def _trial_spec(demo: DemoCopy, trial_id: str) -> Path:
    spec = demo.examples / f"{trial_id}.yaml"
    text = demo.spec.read_text().replace("trial_id: cancer-risk-demo", f"trial_id: {trial_id}")
    text = text.replace("rounds: 10", "rounds: 4")
    lines = [
        "  noise_multiplier: 1.0"
        if line.strip().startswith("noise_multiplier:")
        else "  epsilon_budget: 8.0"
        if line.strip().startswith("epsilon_budget:")
        else line
        for line in text.splitlines()
    ]
    spec.write_text("\n".join(lines) + "\n")
    demo.approve(spec)
    return spec


def _run(demo: DemoCopy, spec: Path) -> tuple[int, dict[str, Any], str]:
    done = subprocess.run(
        [
            str(SANDBOX),
            "run",
            str(spec),
            "--runs-root",
            str(demo.root / "runs-out"),
            "--metrics-port",
            "0",
            "--linger-seconds",
            "0",
            "--format",
            "json",
        ],
        cwd=demo.root,
        env=sandbox_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    return done.returncode, json.loads(done.stdout), done.stderr


def _ledger(demo: DemoCopy, site: str) -> list[dict[str, Any]]:
    [path] = (demo.root / "site-state" / site / "privacy").glob("*.ledger.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def _metric(run_dir: Path, name: str, site: str) -> float:
    for family in text_string_to_metric_families((run_dir / "metrics.prom").read_text()):
        for sample in family.samples:
            if sample.name == name and sample.labels.get("site") == site:
                return float(sample.value)
    raise AssertionError(f"{name}{{site={site}}} not in metrics.prom")


@pytest.fixture(scope="module")
def two_trials(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    demo = copy_demo(tmp_path_factory.mktemp("ledgers"))
    for site in DEMO_SITES:
        config = demo.site_config(site)
        config.write_text(config.read_text() + f"state_dir: ../../site-state/{site}\n")
    first_spec, second_spec = _trial_spec(demo, "ledger-trial-one"), _trial_spec(demo, "ledger-trial-two")
    check = subprocess.run(
        [str(SANDBOX), "check", str(first_spec), "--format", "json"],
        env=sandbox_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    first = _run(demo, first_spec)
    ledgers_after_first = {site: _ledger(demo, site) for site in DEMO_SITES}
    second_check = subprocess.run(
        [str(SANDBOX), "check", str(second_spec), "--format", "json"],
        env=sandbox_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    second = _run(demo, second_spec)
    return {
        "demo": demo,
        "first": first,
        "second": second,
        "ledgers_after_first": ledgers_after_first,
        "check": json.loads(check.stdout),
        "second_check": json.loads(second_check.stdout),
    }


def test_first_trial_finishes_and_charges_every_round(two_trials: dict[str, Any]) -> None:
    """The first trial fits: exit 0, and each site's ledger holds one charge per round with the spec's DP settings."""
    code, summary, stderr = two_trials["first"]
    assert code == 0, stderr[-3000:]
    assert summary["state"] == "finished" and summary["rounds_completed"] == 4
    for site, charges in two_trials["ledgers_after_first"].items():
        training = [c for c in charges if c["release"] == "dp-sgd"]
        assert [c["round"] for c in training] == [1, 2, 3, 4], site
        assert {(c["noise_multiplier"], c["delta"], c["accountant"], c["trial_id"]) for c in training} == {
            (1.0, 1e-5, "rdp", "ledger-trial-one")
        }
        assert [(c["release"], c["round"]) for c in charges if c["release"] != "dp-sgd"] == [
            ("feature-statistics", 0),
            *(("evaluation", r) for r in (1, 2, 3, 4)),
        ], "the feature sums and every evaluation are charged too"


def test_check_shows_the_dry_run_against_what_remains(two_trials: dict[str, Any]) -> None:
    """`sandbox check` prices the whole trial per site before it runs, from the site's ledger as it is then."""
    before, between = two_trials["check"]["privacy_dry_run"], two_trials["second_check"]["privacy_dry_run"]
    for site, charges in two_trials["ledgers_after_first"].items():
        assert before[site]["epsilon_spent_before"] == 0.0
        assert before[site]["rounds_affordable"] == 4
        assert before[site]["trial_epsilon"] == pytest.approx(charges[-1]["trial_epsilon"], rel=1e-9)
        assert between[site]["epsilon_spent_before"] == pytest.approx(charges[-1]["cumulative_epsilon"], rel=1e-9)
        assert 1 <= between[site]["rounds_affordable"] < 4
    assert two_trials["second_check"]["refused"] is False
    assert two_trials["check"]["privacy_stop_expected_before_round"] is None
    assert (
        two_trials["second_check"]["privacy_stop_expected_before_round"]
        == two_trials["second"][1]["rounds_completed"] + 1
    )


def test_second_trial_starts_from_what_the_first_spent(two_trials: dict[str, Any]) -> None:
    """The second trial's first charge composes the first trial's charges: dataset epsilon above its own."""
    demo: DemoCopy = two_trials["demo"]
    for site in DEMO_SITES:
        spent_first = two_trials["ledgers_after_first"][site][-1]["cumulative_epsilon"]
        second = [c for c in _ledger(demo, site) if c["trial_id"] == "ledger-trial-two"]
        assert second, site
        assert second[0]["trial_epsilon"] < spent_first < second[0]["cumulative_epsilon"] <= 8.0
        history = [(c["noise_multiplier"], c["sample_rate"], c["steps"]) for c in _ledger(demo, site)]
        accountant = RDPAccountant()
        accountant.history = history
        assert _ledger(demo, site)[-1]["cumulative_epsilon"] == pytest.approx(accountant.get_epsilon(1e-5), rel=1e-9)


def test_exhausted_budget_stops_the_trial_with_exit_4(two_trials: dict[str, Any]) -> None:
    """Sites refuse rounds they cannot pay for; with fewer than 3 left the trial stops: exit 4, state budget-exhausted."""
    code, summary, stderr = two_trials["second"]
    assert code == 4, stderr[-3000:]
    assert summary["state"] == "budget-exhausted"
    assert 1 <= summary["rounds_completed"] < 4
    assert len(summary["budget_exhausted_sites"]) >= 2
    assert "too few sites have privacy budget left" in stderr


def test_exhaustion_is_in_ledgers_chains_metrics_and_report(two_trials: dict[str, Any]) -> None:
    """No charge passes the budget; refusals are audited at site and coordinator; metrics and report show them."""
    demo: DemoCopy = two_trials["demo"]
    _, summary, _ = two_trials["second"]
    run_dir = Path(summary["run_dir"])
    report = json.loads((run_dir / "report.json").read_text())
    coordinator = [json.loads(line) for line in (run_dir / "audit.jsonl").read_text().splitlines()]
    assert verify_chain(run_dir / "audit.jsonl").ok
    assert any(e["event"] == "trial-stopped-privacy-budget" for e in coordinator)
    exhausted = {e["payload"]["site_id"] for e in coordinator if e["event"] == "privacy-budget-exhausted"}
    assert exhausted == set(summary["budget_exhausted_sites"])
    for site in DEMO_SITES:
        charges = _ledger(demo, site)
        assert all(c["cumulative_epsilon"] <= c["epsilon_budget"] for c in charges)
        entry = next(s for s in report["sites"] if s["site_id"] == site)["privacy"]
        assert entry["epsilon_spent"] == charges[-1]["cumulative_epsilon"]
        assert _metric(run_dir, "sandbox_privacy_epsilon_spent", site) == pytest.approx(
            charges[-1]["cumulative_epsilon"], rel=1e-12
        )
        assert _metric(run_dir, "sandbox_privacy_budget_exhausted", site) == (1.0 if site in exhausted else 0.0)
        site_chain = demo.root / "site-state" / site / "ledger-trial-two" / "audit.jsonl"
        assert verify_chain(site_chain).ok
        site_events = [json.loads(line)["event"] for line in site_chain.read_text().splitlines()]
        assert ("privacy-budget-exhausted" in site_events) == (site in exhausted)
        if site in exhausted:
            assert entry["budget_exhausted_at_round"] == summary["budget_exhausted_sites"][site]


def test_a_run_whose_sites_keep_their_chains_verifies_with_the_site_folders_given(two_trials: dict[str, Any]) -> None:
    """Chains kept in the sites' state folders are recorded as such (with every head, refusals included); verify
    asks for their folders, and with them checks chains, cross-references and ledgers: exit 0."""
    from typer.testing import CliRunner

    from sandbox.cli import app

    demo: DemoCopy = two_trials["demo"]
    run_dir = Path(two_trials["second"][1]["run_dir"])
    report = json.loads((run_dir / "report.json").read_text())
    for site in DEMO_SITES:
        head = report["audit"]["sites"][site]
        assert "path" not in head and head["kept_by_site"] == "ledger-trial-two/audit.jsonl"
        chain = demo.root / "site-state" / site / head["kept_by_site"]
        assert (head["length"], head["head_source"]) == (len(chain.read_text().splitlines()), "read-at-end")
    unmapped = CliRunner().invoke(app, ["audit", "verify", str(run_dir)])
    assert unmapped.exit_code == 5 and "give --site-chains" in unmapped.stdout
    folders = ",".join(f"{site}={demo.root / 'site-state' / site}" for site in DEMO_SITES)
    mapped = CliRunner().invoke(app, ["audit", "verify", str(run_dir), "--site-chains", folders])
    assert mapped.exit_code == 0, mapped.stdout + mapped.stderr
    assert all(f"ok    ledger {site}" in mapped.stdout for site in DEMO_SITES)
