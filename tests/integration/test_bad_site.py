"""A bad site cannot move the global model: its update is rejected, counted, audited, and left out.

Two real simulations of the demo cut to four rounds, same seed. In the first, gb-leeds sends a
NaN update in round 1, +Inf/-Inf in round 2, a wrongly shaped one in round 3 and one scaled by
1e6 (beyond the presets' bound of 10) in round 4. In the second, gb-leeds simply refuses to
train every round. Screening must make the two runs' global models the same.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from prometheus_client.parser import text_string_to_metric_families

from sandbox import trial_run
from sandbox.consent import clear_trial
from sandbox.resolved_trial import resolve_trial
from tests.approved_demo import copy_demo
from tests.demo_accuracy import true_pooled_test_accuracy
from tests.integration.conftest import REPO
from tests.integration.sabotaged_sites import REFUSE, make_sabotaged_client_app
from tests.prometheus_server import free_port
from trialcore.audit_verify import verify_chain
from trialcore.spec_loading import load_spec

pytestmark = pytest.mark.integration

BAD_SITE = "gb-leeds"
ROUNDS = 4
SABOTAGE = {1: "nan", 2: "inf", 3: "wrong-shape", 4: "scale-1e6"}
EXPECTED_REASONS = {1: "non-finite", 2: "non-finite", 3: "wrong-shape", 4: "norm-too-large"}
HONEST_SITES = ("de-berlin", "fr-lyon", "ch-zurich")


@dataclass(frozen=True)
class Run:
    run_dir: Path
    report: dict[str, Any]
    rejected: dict[tuple[str, str], float]
    """``sandbox_updates_rejected_total`` by (site, reason), from the run's metrics.prom."""

    def audit_entries(self, event: str) -> list[dict[str, Any]]:
        lines = (self.run_dir / "audit.jsonl").read_text(encoding="utf-8").splitlines()
        return [entry for entry in map(json.loads, lines) if entry["event"] == event]


def _rejected_counts(metrics_text: str) -> dict[tuple[str, str], float]:
    counts: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == "sandbox_updates_rejected_total":
                counts[(sample.labels["site"], sample.labels["reason"])] = sample.value
    return counts


def _simulate(spec_path: Path, runs_root: Path, plan: dict[int, str]) -> Run:
    loaded = load_spec(spec_path)
    with pytest.MonkeyPatch.context() as patch:
        # The simulated sites are Ray workers: they import tests.integration.sabotaged_sites by name.
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH")))))
        patch.setattr(
            trial_run,
            "make_client_app",
            lambda settings: make_sabotaged_client_app(settings, site_id=BAD_SITE, plan=plan),
        )
        trial = resolve_trial(loaded)
        result = trial_run.run_in_simulation(
            trial, runs_root=runs_root, metrics_port=free_port(), clearance=clear_trial(trial)
        )
    return Run(result.run_dir, result.report, _rejected_counts((result.run_dir / "metrics.prom").read_text()))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Run, Run]]:
    """(sabotaged run, run where the bad site refuses every round): same spec, same seed."""
    workdir = tmp_path_factory.mktemp("bad-site")
    demo = copy_demo(workdir / "demo")
    spec = yaml.safe_load(demo.spec.read_text(encoding="utf-8"))
    # Relative to the spec file, never the temporary folder's absolute path: the spec hash seeds every
    # release's noise (the feature sums behind each site's scaling too), so an absolute path made the
    # model, and its accuracy, change with pytest's session folder number.
    spec.update(rounds=ROUNDS, federation=demo.sites_dir.relative_to(workdir).as_posix())
    spec_path = workdir / "demo-4-rounds.yaml"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    demo.approve(spec_path)  # the sites sign this 4-round spec
    sabotaged = _simulate(spec_path, workdir / "sabotaged", SABOTAGE)
    refused = _simulate(spec_path, workdir / "refused", dict.fromkeys(range(1, ROUNDS + 1), REFUSE))
    return sabotaged, refused


def test_each_bad_update_is_rejected_with_its_reason(runs: tuple[Run, Run]) -> None:
    """Each round's report names the bad site's rejected update, its reason and the numbers behind it."""
    sabotaged, _ = runs
    rounds = sabotaged.report["rounds"]
    assert [entry["round"] for entry in rounds] == [1, 2, 3, 4]
    for entry in rounds:
        (rejection,) = entry["rejections"]
        assert (rejection["site_id"], rejection["reason"]) == (BAD_SITE, EXPECTED_REASONS[entry["round"]])
        assert BAD_SITE in entry["trained_sites"] and entry["aggregated"] is True
        assert set(entry["sites"]) == {*HONEST_SITES, BAD_SITE}, "the bad site still evaluates the global model"
    details = [entry["rejections"][0]["detail"] for entry in rounds]
    assert details[0] == "1 of 31 values are not finite (NaN 1, +Inf 0, -Inf 0); first in array '0.weight'"
    assert details[1] == "2 of 31 values are not finite (NaN 0, +Inf 1, -Inf 1); first in array '0.weight'"
    assert (
        details[2]
        == "array '0.weight' has shape (31,) dtype float32; the global model's has shape (1, 30) dtype float32"
    )
    assert details[3].startswith("L2 norm of the update ") and details[3].endswith(" exceeds the policy bound 10")
    assert float(details[3].split()[5]) > 1e5


def test_rejections_are_counted_per_site_and_reason(runs: tuple[Run, Run]) -> None:
    """sandbox_updates_rejected_total counts the bad site's rejections by reason, and nothing for honest sites."""
    sabotaged, _ = runs
    assert {key: value for key, value in sabotaged.rejected.items() if value} == {
        (BAD_SITE, "non-finite"): 2.0,
        (BAD_SITE, "wrong-shape"): 1.0,
        (BAD_SITE, "norm-too-large"): 1.0,
    }
    assert {site for site, _ in sabotaged.rejected} == {*HONEST_SITES, BAD_SITE}, (
        "every site's series exists from the start"
    )


def test_rejections_are_audited_in_the_intact_chain(runs: tuple[Run, Run]) -> None:
    """Each rejection is an update-rejected entry (round, site, reason, detail) in the coordinator's intact chain."""
    sabotaged, _ = runs
    entries = sabotaged.audit_entries("update-rejected")
    assert [(e["payload"]["round"], e["payload"]["site_id"], e["payload"]["reason"]) for e in entries] == [
        (r, BAD_SITE, EXPECTED_REASONS[r]) for r in range(1, ROUNDS + 1)
    ]
    assert [e["payload"]["detail"] for e in entries] == [
        entry["rejections"][0]["detail"] for entry in sabotaged.report["rounds"]
    ]
    assert not sabotaged.audit_entries("round-skipped")
    result = verify_chain(sabotaged.run_dir / "audit.jsonl")
    assert result.ok, result.message()
    assert (
        result.length == 5 + ROUNDS * 4 + 1
    )  # started, pre-flight, consent, regulator keys, features; per round configured, rejected, policy-violation, aggregated; finished


def test_global_model_is_as_if_the_bad_site_had_stayed_out(runs: tuple[Run, Run]) -> None:
    """Round by round, the global model equals that of a run where the bad site refuses to train."""
    sabotaged, refused = runs
    assert all(entry["rejections"][0]["reason"] == "site-refused" for entry in refused.report["rounds"])
    for mine, theirs in zip(sabotaged.report["rounds"], refused.report["rounds"], strict=True):
        assert mine["global"]["test_accuracy"] == pytest.approx(theirs["global"]["test_accuracy"], abs=1e-9)
        assert mine["global"]["test_loss"] == pytest.approx(theirs["global"]["test_loss"], abs=1e-6)
    final = sabotaged.report["final"]["global"]["test_accuracy"]
    assert final == pytest.approx(refused.report["final"]["global"]["test_accuracy"], abs=1e-9)
    assert true_pooled_test_accuracy(sabotaged.run_dir) >= 0.9, "three honest sites still train a useful model"
    mine_model = torch.load(sabotaged.run_dir / "model.pt", weights_only=True)
    their_model = torch.load(refused.run_dir / "model.pt", weights_only=True)
    assert mine_model.keys() == their_model.keys()
    for key in mine_model:
        assert torch.isfinite(mine_model[key]).all()
        torch.testing.assert_close(mine_model[key], their_model[key], rtol=0, atol=1e-6)


def test_a_refusing_site_is_counted_as_site_refused(runs: tuple[Run, Run]) -> None:
    """A site's error reply is a site-refused rejection, audited and counted every round under its site.

    An error reply names no site; the coordinator attributes it by the node that sent it, which the
    feature query before round 1 bound to its site.
    """
    _, refused = runs
    sites = [entry["rejections"][0]["site_id"] for entry in refused.report["rounds"]]
    assert sites == [BAD_SITE] * ROUNDS
    assert {key: value for key, value in refused.rejected.items() if value} == {(BAD_SITE, "site-refused"): ROUNDS}
    assert len(refused.audit_entries("update-rejected")) == ROUNDS


def test_violations_escalate_to_exclusion_with_incident_records(runs: tuple[Run, Run]) -> None:
    """Each bad update is an incident (rule, severity, action, deadline); the site's 4th violation excludes it, per policy."""
    sabotaged, refused = runs
    lines = (sabotaged.run_dir / "incidents.jsonl").read_text(encoding="utf-8").splitlines()
    incidents = [json.loads(line) for line in lines]
    assert [(i["round"], i["site_id"], i["action"]) for i in incidents] == [
        (1, BAD_SITE, "warn"),
        (2, BAD_SITE, "warn"),
        (3, BAD_SITE, "warn"),
        (4, BAD_SITE, "exclude"),
    ]
    assert [i["rule"] for i in incidents] == ["update-integrity", "update-integrity", "update-integrity", "update-norm"]
    assert all(i["reporting_deadline"] > i["time"] for i in incidents)
    assert sabotaged.report["incidents"] == incidents
    assert [e["payload"]["action"] for e in sabotaged.audit_entries("policy-violation")] == [
        "warn",
        "warn",
        "warn",
        "exclude",
    ]
    violations = {
        (s.labels["site"], s.labels["rule"]): s.value
        for family in text_string_to_metric_families((sabotaged.run_dir / "metrics.prom").read_text())
        for s in family.samples
        if s.name == "sandbox_policy_violations_total"
    }
    assert violations[(BAD_SITE, "update-integrity")] == 3 and violations[(BAD_SITE, "update-norm")] == 1
    assert violations[("de-berlin", "update-integrity")] == 0
    assert not (refused.run_dir / "incidents.jsonl").exists(), "a site refusing to train is no violation"
