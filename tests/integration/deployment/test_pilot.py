"""The pilot on Flower's deployment engine: TLS, authenticated SuperNodes, a rogue node, a node that dies.

All tests examine the one shared pilot run (:mod:`tests.integration.deployment.conftest`).
"""

from __future__ import annotations

import json

import pytest

from participants.approval_keys import new_key_pair
from tests.integration.deployment.conftest import PilotRun, verify
from tests.integration.deployment.topology import SITES, Topology

pytestmark = pytest.mark.integration


def _events(pilot_run: PilotRun) -> list[dict[str, object]]:
    return [json.loads(line) for line in (pilot_run.run_dir / "audit.jsonl").read_text().splitlines()]


def test_pilot_runs_two_rounds_over_tls_with_authenticated_nodes(pilot_run: PilotRun) -> None:
    """sandbox run --engine deployment trains 2 rounds through the SuperLink; all three sites trained in round 1."""
    assert pilot_run.returncode == 0, pilot_run.stderr[-6000:]
    report = pilot_run.report
    assert report["state"] == "finished"
    assert report["rounds_completed"] == 2
    assert sorted(report["audit"]["sites"]) == sorted(SITES)
    round_one = [e for e in _events(pilot_run) if e["event"] == "round-aggregated" and e["payload"]["round"] == 1]
    assert len(round_one) == 1
    assert sorted(round_one[0]["payload"]["trained_sites"]) == sorted(SITES)  # type: ignore[index]
    assert pilot_run.summary["state"] == "finished"
    print(f"deployment pilot (2 rounds, 3 sites, one killed in round 2): {pilot_run.wall_seconds:.1f} s")


def test_pilot_evidence_verifies_and_each_site_keeps_its_own(pilot_run: PilotRun, topology: Topology) -> None:
    """The coordinator's chain verifies against report.json; each site's own state folder holds only its own chain."""
    checked = verify(pilot_run.run_dir / "audit.jsonl")
    assert checked.returncode == 0, checked.stderr
    assert "run finished" in checked.stdout or "finished" in checked.stdout
    for site_id in SITES:
        chain = topology.state_dir(site_id) / "pilot-deploy" / "audit.jsonl"
        assert chain.is_file(), f"{site_id} kept no chain in its own state folder"
        assert verify(chain).returncode == 0
        actors = {json.loads(line)["actor"] for line in chain.read_text().splitlines()}
        assert actors == {f"site:{site_id}"}
    assert not (pilot_run.run_dir / "sites").exists(), "real sites keep their state at the site, not in the run folder"


def test_pilot_run_is_signed_by_the_coordinator_key_and_verifies_whole(pilot_run: PilotRun, topology: Topology) -> None:
    """A deployment run signs report.json with --coordinator-key; audit verify RUN_DIR pins it and checks every chain.

    The sites keep their chains in their own state folders, which --site-chains names.
    """
    assert (pilot_run.run_dir / "report.json.sig").is_file() and (pilot_run.run_dir / "report.html").is_file()
    assert pilot_run.report["signer"]["pinned"] is True
    where = ",".join(f"{site_id}={topology.state_dir(site_id)}" for site_id in SITES)
    checked = verify(pilot_run.run_dir, "--coordinator-key", str(pilot_run.coordinator_key), "--site-chains", where)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    lines = checked.stdout.splitlines()
    assert any(line.startswith("ok") and "signed by the given coordinator key" in line for line in lines), lines
    for site_id in SITES:
        assert any(line.startswith(f"ok    chain site {site_id}:") for line in lines), lines
        assert any(line.startswith(f"ok    cross-references {site_id}:") for line in lines), lines
    other = new_key_pair(topology.root / "other-coordinator", "other")
    wrong = verify(pilot_run.run_dir, "--coordinator-key", str(other.public_key), "--site-chains", where)
    assert wrong.returncode == 5 and "signature" in wrong.stderr, wrong.stdout + wrong.stderr


def test_unregistered_node_is_refused_and_the_trial_is_unaffected(pilot_run: PilotRun) -> None:
    """A fourth SuperNode whose key is not registered is refused (participants join exits 3); no reply of it counts."""
    assert pilot_run.rogue_returncode == 3, pilot_run.rogue_log[-3000:]
    assert "not registered" in pilot_run.rogue_log
    rejected = [e for e in _events(pilot_run) if e["event"] == "update-rejected"]
    assert all(e["payload"]["reason"] == "site-unavailable" for e in rejected), rejected  # type: ignore[index]
    assert pilot_run.report["state"] == "finished"


def test_node_killed_mid_round_is_recorded_and_the_round_completes(pilot_run: PilotRun) -> None:
    """gb-leeds killed in round 2: round 2 aggregates from the other two (min_participants 2), recorded in audit and metrics."""
    events = _events(pilot_run)
    round_two = [e for e in events if e["event"] == "round-aggregated" and e["payload"]["round"] == 2]
    assert len(round_two) == 1, [e["event"] for e in events]
    assert pilot_run.killed_site not in round_two[0]["payload"]["trained_sites"]  # type: ignore[index]
    lost = [
        e
        for e in events
        if e["event"] == "update-rejected" and e["payload"]["reason"] == "site-unavailable"  # type: ignore[index]
    ]
    assert {e["payload"]["site_id"] for e in lost} == {pilot_run.killed_site}  # type: ignore[index]
    metrics = (pilot_run.run_dir / "metrics.prom").read_text()
    counted = [
        line
        for line in metrics.splitlines()
        if line.startswith("sandbox_updates_rejected_total{")
        and 'reason="site-unavailable"' in line
        and f'site="{pilot_run.killed_site}"' in line
    ]
    assert counted and float(counted[0].rsplit(" ", 1)[1]) >= 1, counted
